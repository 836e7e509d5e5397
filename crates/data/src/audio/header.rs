//! What the decoder is not trusted with (issue 27 items 16, 22): a WAV or FLAC header's sample
//! rate is checked against a sane range before symphonia reads it (it asserts on a rate of 0, and
//! 1 Hz or 400 MHz decode into hours of samples or an empty clip), and a WAV whose sizes are
//! `0xFFFFFFFF` — what ffmpeg writes to a pipe, where it cannot go back to fill them in — gets its
//! real sizes, so it decodes to the end of the file instead of looking truncated.

use anyhow::{Result, bail};
use std::ops::RangeInclusive;

/// Sample rates accepted, in Hz: from telephone speech (8 kHz) to the highest studio rate
/// (384 kHz). Anything outside is a broken header, not audio.
pub const SANE_RATES: RangeInclusive<u32> = 8_000..=384_000;

/// The size field of a RIFF chunk whose size the writer did not know.
const UNKNOWN_SIZE: u32 = u32::MAX;

/// Checks the header of a WAV (RIFF/WAVE) or FLAC file held in `bytes` and fills in a WAV's
/// unknown sizes in place. Other containers are left to the decoder (which rejects them).
pub fn prepare(bytes: &mut [u8]) -> Result<()> {
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        prepare_wav(bytes)
    } else if bytes.starts_with(b"fLaC") && bytes.len() >= 21 {
        // STREAMINFO, the first metadata block: after the 4-byte block header, 10 bytes of block
        // and frame sizes, then the sample rate in 20 bits.
        check_rate((u32::from(bytes[18]) << 12) | (u32::from(bytes[19]) << 4) | (u32::from(bytes[20]) >> 4))
    } else {
        Ok(())
    }
}

/// Checks `rate` (Hz, from a header) against [`SANE_RATES`].
pub fn check_rate(rate: u32) -> Result<()> {
    if !SANE_RATES.contains(&rate) {
        bail!(
            "sample rate {rate} Hz in the header, expected {}–{} Hz (a broken header: no recording has this rate)",
            SANE_RATES.start(),
            SANE_RATES.end()
        );
    }
    Ok(())
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Walks the RIFF chunks up to `data`: checks the `fmt ` rate, and where the `data` size is
/// unknown sets it to the whole frames the file holds after the chunk header (and an unknown
/// RIFF size to the file's).
fn prepare_wav(bytes: &mut [u8]) -> Result<()> {
    let len = bytes.len();
    if read_u32(bytes, 4) == UNKNOWN_SIZE {
        bytes[4..8].copy_from_slice(&u32::try_from(len - 8).unwrap_or(UNKNOWN_SIZE).to_le_bytes());
    }
    let mut block_align = 0usize;
    let mut at = 12;
    while at + 8 <= len {
        let (id, size) = (&bytes[at..at + 4], read_u32(bytes, at + 4));
        if id == b"fmt " && size >= 16 && at + 24 <= len {
            check_rate(read_u32(bytes, at + 12))?;
            block_align = usize::from(u16::from_le_bytes([bytes[at + 20], bytes[at + 21]]));
        }
        if id == b"data" {
            if size == UNKNOWN_SIZE && block_align > 0 {
                let held = (len - at - 8) / block_align * block_align;
                bytes[at + 4..at + 8].copy_from_slice(&u32::try_from(held).unwrap_or(UNKNOWN_SIZE).to_le_bytes());
            }
            return Ok(());
        }
        // Chunks are padded to an even length.
        at = at.saturating_add(8).saturating_add(size as usize).saturating_add(size as usize & 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-bit mono WAV header (44 bytes) at `rate` with `frames` frames of silence.
    fn wav(rate: u32, frames: u32) -> Vec<u8> {
        let mut b = b"RIFF".to_vec();
        b.extend((36 + 2 * frames).to_le_bytes());
        b.extend(b"WAVEfmt ");
        b.extend(16u32.to_le_bytes());
        b.extend([1, 0, 1, 0]); // PCM, mono
        b.extend(rate.to_le_bytes());
        b.extend((rate * 2).to_le_bytes());
        b.extend([2, 0, 16, 0]); // block align 2, 16 bits
        b.extend(b"data");
        b.extend((2 * frames).to_le_bytes());
        b.extend(vec![0u8; 2 * frames as usize]);
        b
    }

    #[test]
    fn rates_outside_the_sane_range_are_errors() {
        for rate in [0, 1, 7_999, 384_001, 400_000_000] {
            let e = prepare(&mut wav(rate, 4)).unwrap_err().to_string();
            assert!(e.contains(&format!("sample rate {rate} Hz")) && e.contains("8000–384000"), "{e}");
        }
        for rate in [8_000, 44_100, 48_000, 384_000] {
            prepare(&mut wav(rate, 4)).unwrap();
        }
    }

    #[test]
    fn unknown_sizes_become_the_files_own() {
        let mut b = wav(48_000, 5);
        b[4..8].copy_from_slice(&UNKNOWN_SIZE.to_le_bytes());
        b[40..44].copy_from_slice(&UNKNOWN_SIZE.to_le_bytes());
        b.push(7); // half a frame at the end: not a whole frame, not counted
        prepare(&mut b).unwrap();
        assert_eq!((read_u32(&b, 4), read_u32(&b, 40)), (b.len() as u32 - 8, 10));
    }
}
