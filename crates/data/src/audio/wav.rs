//! Reading and writing audio files: WAV and FLAC decoded with symphonia (any PCM sample format
//! it supports, mixed down to mono, resampled band-limited), WAV written with hound.

use super::header;
use super::resample::resample;
use anyhow::{Context, Result, anyhow, bail, ensure};
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// A decoded clip: interleaved channels mixed to mono.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// Mono samples in [−1, 1].
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels in the file before the mix-down.
    pub channels: usize,
}

/// Decodes a WAV or FLAC file and averages its channels to mono. Errors name the file: a folder
/// or an empty file, unreadable or unknown containers, a sample rate outside
/// [`header::SANE_RATES`], unsupported codecs or sample formats, and files shorter than their
/// header promises. A WAV whose sizes are unknown (`0xFFFFFFFF`, written to a pipe) is read to
/// the end of the file.
pub fn decode(path: &Path) -> Result<Clip> {
    decode_inner(path).with_context(|| format!("decoding audio file {}", path.display()))
}

/// The file's bytes, checked to be a non-empty file and its header prepared for the decoder
/// ([`header::prepare`]). Whole files are read: clips and noise recordings are megabytes at most.
fn read_audio(path: &Path) -> Result<Vec<u8>> {
    ensure!(crate::files::entry(path) != crate::files::Entry::Folder, "a folder where an audio file is expected");
    let mut bytes = std::fs::read(path).context("cannot read")?;
    ensure!(!bytes.is_empty(), "an empty file (0 bytes): expected a WAV or FLAC file");
    header::prepare(&mut bytes)?;
    Ok(bytes)
}

fn decode_inner(path: &Path) -> Result<Clip> {
    let bytes = read_audio(path)?;
    let mss = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(&ext.to_ascii_lowercase());
    }
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|e| anyhow!("not a readable WAV or FLAC file: {e}"))?;
    let mut format = probed.format;
    let track = format.default_track().ok_or_else(|| anyhow!("no audio track"))?;
    let (track_id, params) = (track.id, track.codec_params.clone());
    let sample_rate = params.sample_rate.ok_or_else(|| anyhow!("no sample rate in the header"))?;
    header::check_rate(sample_rate)?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| anyhow!("unsupported codec or sample format ({:?}): {e}", params.codec))?;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut channels = params.channels.map(|c| c.count()).unwrap_or(0);
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => bail!("reading packets: {e}"),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = decoder.decode(&packet).map_err(|e| anyhow!("decoding: {e}"))?;
        channels = decoded.spec().channels.count();
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, *decoded.spec());
        buf.copy_interleaved_ref(decoded);
        interleaved.extend_from_slice(buf.samples());
    }
    ensure!(channels > 0, "no channels");
    let frames = interleaved.len() / channels;
    if let Some(n) = params.n_frames {
        ensure!(frames as u64 >= n, "truncated: the header promises {n} frames, the file holds {frames}");
    }
    ensure!(frames > 0, "no audio samples");
    Ok(Clip { samples: mix_to_mono(&interleaved, channels), sample_rate, channels })
}

/// Averages interleaved `channels` into one channel.
pub fn mix_to_mono(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32).collect()
}

/// Decodes `path` (see [`decode`]) and resamples it to `rate` Hz.
pub fn load_mono(path: &Path, rate: u32) -> Result<Vec<f32>> {
    let clip = decode(path)?;
    Ok(resample(&clip.samples, clip.sample_rate, rate))
}

/// Writes mono `samples` as a 16-bit PCM WAV at `rate` Hz (clipped to [−1, 1]), atomically.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32) -> Result<()> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut bytes = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut bytes, spec)?;
        for &s in samples {
            w.write_sample((s.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16)?;
        }
        w.finalize()?;
    }
    featdrop_core::io::write_atomic(path, bytes.get_ref())
}
