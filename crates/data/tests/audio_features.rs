//! The log-mel front end of `speech+noise` (docs/PROTOCOL.md §2.2), checked against values computed
//! independently here.

use featdrop_data::audio::mel::{hz_to_mel, mel_edges, mel_filterbank, mel_to_hz};
use featdrop_data::audio::{LogMel, MelConfig};
use std::f64::consts::PI;
use tch::{Device, Kind, Tensor};

const SR: f64 = 48_000.0;

fn sine(freq: f64, amp: f64, n: usize) -> Tensor {
    let v: Vec<f32> = (0..n).map(|i| (amp * (2.0 * PI * freq * i as f64 / SR).sin()) as f32).collect();
    Tensor::from_slice(&v).unsqueeze(0)
}

#[test]
fn slaney_scale_at_known_points() {
    // Linear below 1 kHz at 200/3 Hz per mel; 1 kHz is 15 mel; 6.4 kHz is 27 log steps more.
    assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
    assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-9);
    assert!((hz_to_mel(200.0) - 3.0).abs() < 1e-9);
    assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
    assert!((mel_to_hz(42.0) - 6400.0).abs() < 1e-6);
    let step = 6.4f64.ln() / 27.0;
    assert!((hz_to_mel(24_000.0) - (15.0 + 24f64.ln() / step)).abs() < 1e-9);
    let e = mel_edges(64, 0.0, 24_000.0);
    assert_eq!(e.len(), 66);
    assert!(e[0].abs() < 1e-9 && (e[65] - 24_000.0).abs() < 1e-6);
}

#[test]
fn filterbank_triangles_and_area_normalisation() {
    let fb = mel_filterbank(SR, 2048, 64, 0.0, 24_000.0);
    assert_eq!((fb.len(), fb[0].len()), (64, 1025));
    let edges = mel_edges(64, 0.0, 24_000.0);
    let df = SR / 2048.0;
    for (m, w) in fb.iter().enumerate() {
        let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        let height = 2.0 / (hi - lo);
        // Zero outside (lo, hi), never above the Slaney height, and the exact triangle value
        // inside, computed here from its definition.
        for (k, &v) in w.iter().enumerate() {
            let f = k as f64 * df;
            let expect = if f <= lo || f >= hi {
                0.0
            } else if f <= mid {
                height * (f - lo) / (mid - lo)
            } else {
                height * (hi - f) / (hi - mid)
            };
            assert!((v - expect).abs() < 1e-9 * height.max(1.0), "filter {m} bin {k}: {v} vs {expect}");
        }
        // Area normalisation: Σ w·Δf ≈ ½ · base · height = 1 once a filter spans many bins.
        if hi - lo > 20.0 * df {
            let area: f64 = w.iter().sum::<f64>() * df;
            assert!((area - 1.0).abs() < 0.02, "filter {m}: area {area}");
        }
    }
}

#[test]
fn stft_power_obeys_parseval_for_a_sine() {
    let mel = LogMel::new(MelConfig::default(), Device::Cpu);
    let (amp, n) = (0.5, 50_000);
    let x = sine(1234.5, amp, n);
    let p = mel.power(&x);
    assert_eq!(p.size(), [1, 1025, 64]);
    // A frame away from the padded edges: frame t is centred on sample t·hop.
    let t = 30i64;
    let col = Vec::<f64>::try_from(p.get(0).select(1, t).to_kind(Kind::Double)).unwrap();
    let one_sided: f64 = col[0] + col[1024] + 2.0 * col[1..1024].iter().sum::<f64>();
    // Σ|X_k|² over all N bins = N · Σ (x·w)², with the periodic Hann window computed here.
    let start = t * 788 - 1024;
    let xs = Vec::<f64>::try_from(x.get(0).narrow(0, start, 2048).to_kind(Kind::Double)).unwrap();
    let frame_energy: f64 =
        xs.iter().enumerate().map(|(i, v)| (v * 0.5 * (1.0 - (2.0 * PI * i as f64 / 2048.0).cos())).powi(2)).sum();
    assert!((one_sided / (2048.0 * frame_energy) - 1.0).abs() < 1e-4, "{one_sided} vs {}", 2048.0 * frame_energy);
    // And that energy is about A²/2 · Σw² = A²/2 · 3N/8 for a stationary sine.
    assert!((frame_energy / (amp * amp / 2.0 * 3.0 * 2048.0 / 8.0) - 1.0).abs() < 0.01);
}

#[test]
fn a_sines_energy_lands_in_its_mel_band() {
    let mel = LogMel::new(MelConfig::default(), Device::Cpu);
    let edges = mel_edges(64, 0.0, 24_000.0);
    for f in [300.0, 1000.0, 2500.0, 7000.0, 15_000.0] {
        let m = mel.mel_power(&sine(f, 0.3, 50_000));
        assert_eq!(m.size(), [1, 64, 64]);
        let band = m.get(0).select(1, 32).argmax(0, false).int64_value(&[]) as usize;
        // The band whose triangle is highest at f: f lies between its lower and upper edge.
        assert!(edges[band] < f && f < edges[band + 2], "{f} Hz went to band {band} ({:?})", &edges[band..band + 3]);
        let nearest = (0..64).min_by(|&a, &b| (edges[a + 1] - f).abs().total_cmp(&(edges[b + 1] - f).abs())).unwrap();
        assert!(band.abs_diff(nearest) <= 1, "{f} Hz: band {band}, nearest centre {nearest}");
    }
}

#[test]
fn log_of_squared_mel_power_clips_80_db_under_the_max() {
    let mel = LogMel::new(MelConfig::default(), Device::Cpu);
    let s = Tensor::from_slice(&[1.0f32, 1e-2, 1e-3, 1e-5, 0.0, 3.0]).view([1, 2, 3]);
    let got = Vec::<f64>::try_from(mel.log_of_mel(&s).flatten(0, -1).to_kind(Kind::Double)).unwrap();
    let top = 10.0 * (9.0f64).log10();
    let expect: Vec<f64> = [1.0f64, 1e-2, 1e-3, 1e-5, 0.0, 3.0]
        .iter()
        .map(|&v| (10.0 * (v * v).max(1e-10).log10()).max(top - 80.0))
        .collect();
    for (g, e) in got.iter().zip(&expect) {
        assert!((g - e).abs() < 1e-3, "{got:?} vs {expect:?}");
    }
    assert!((got[3] - (top - 80.0)).abs() < 1e-3, "10 log10(1e-10) = −100 lies more than 80 dB under the top");
}

#[test]
fn features_are_64_by_64_and_normalised_with_the_published_constants() {
    let c = MelConfig::default();
    assert_eq!((c.n_fft, c.hop, c.n_mels, c.mean, c.std, c.top_db), (2048, 788, 64, -90.293, 11.799, 80.0));
    let mel = LogMel::new(c, Device::Cpu);
    assert_eq!(mel.frames(50_000), 64);
    // Silence: every mel power is 0, so the log is 10·log10(1e-10) = −100 dB everywhere.
    let silent = mel.features(&Tensor::zeros([2, 50_000], (Kind::Float, Device::Cpu)));
    assert_eq!(silent.size(), [2, 1, 64, 64]);
    let want = (-100.0 + 90.293) / 11.799;
    assert!((silent - want).abs().max().double_value(&[]) < 1e-4);
    let x = sine(440.0, 0.2, 50_000);
    let f = mel.features(&x);
    let manual = (mel.log_of_mel(&mel.mel_power(&x)) + 90.293) / 11.799;
    assert!(f.squeeze_dim(1).allclose(&manual, 1e-5, 1e-5, false));
    // The clip: nothing sits more than 80 dB (80/11.799 normalised) under the example's maximum.
    let range = (f.max() - f.min()).double_value(&[]);
    assert!(range <= 80.0 / 11.799 + 1e-4 && range > 60.0 / 11.799, "range {range}");
}
