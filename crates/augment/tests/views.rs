//! The view families through their public interface (docs/PROTOCOL.md §3.1, §3.3).

use featdrop_augment::audio::{sample_bands, white_noise};
use featdrop_augment::{
    ExpertImage, ExpertSpectral, ExpertWaveform, Identity, ImageRecipe, Normalize, SpectralRecipe, WaveformRecipe,
    with_seed,
};
use featdrop_core::ViewFamily;
use tch::{Device, Kind, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn images(n: i64) -> Tensor {
    (with_seed(99, || Tensor::rand([n, 3, 32, 32], CPU)) + Tensor::linspace(0.0, 1.0, 32, CPU).view([1, 1, 1, 32]))
        / 2.0
}

fn only(edit: impl FnOnce(&mut ImageRecipe)) -> ImageRecipe {
    let mut r = ImageRecipe::disabled();
    edit(&mut r);
    r
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

#[test]
fn with_every_probability_zero_views_are_the_normalised_input() {
    let x = images(8);
    let family = ExpertImage::new(ImageRecipe::disabled()).unwrap();
    let expected = Normalize::default().apply(&x);
    assert!(family.view(&x, 17).equal(&expected));
    assert!(Identity::default().view(&x, 17).equal(&expected));
    assert_eq!((family.name(), Identity::default().name()), ("expert".to_string(), "identity".to_string()));
    // Normalisation itself: channel 0 of a 0.491 image is 0.
    let gray = Tensor::full([1, 3, 2, 2], 0.491, CPU);
    assert!(scalar(&expected.isfinite().all()) == 1.0);
    assert!(Normalize::default().apply(&gray).select(1, 0).abs().max().double_value(&[]) < 1e-6);
}

#[test]
fn p_one_grayscale_gives_equal_channels_and_flip_is_exact() {
    let x = images(8);
    let gray = ExpertImage::new(only(|r| r.grayscale_p = 1.0)).unwrap().augment(&x, 3);
    assert!(gray.select(1, 0).equal(&gray.select(1, 1)) && gray.select(1, 1).equal(&gray.select(1, 2)));
    let flipped = ExpertImage::new(only(|r| r.flip_p = 1.0)).unwrap().augment(&x, 3);
    assert!(flipped.equal(&x.flip([3])));
}

#[test]
fn p_one_jitter_blur_and_crop_change_every_image() {
    let x = images(16);
    let per_image_change = |y: &Tensor| (y - &x).abs().amax([1i64, 2, 3].as_slice(), false).min().double_value(&[]);
    let jitter = ExpertImage::new(only(|r| r.jitter_p = 1.0)).unwrap().augment(&x, 4);
    assert!(per_image_change(&jitter) > 1e-3);
    let blur = ExpertImage::new(only(|r| {
        r.blur_p = 1.0;
        r.blur_sigma = [1.0, 2.0];
    }))
    .unwrap()
    .augment(&x, 4);
    assert!(per_image_change(&blur) > 1e-3);
    let crop = ExpertImage::new(only(|r| r.crop_scale = [0.2, 0.5])).unwrap().augment(&x, 4);
    assert!(per_image_change(&crop) > 1e-3);
    for y in [&jitter, &blur, &crop] {
        assert!(scalar(&y.min()) >= 0.0 && scalar(&y.max()) <= 1.0);
    }
}

#[test]
fn sampled_parameters_are_exposed_and_follow_their_probabilities() {
    let recipe = ImageRecipe::default();
    let p = with_seed(8, || recipe.sample(20_000, (32, 32), Device::Cpu));
    let rate = |t: &Tensor| t.to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    for (got, want) in
        [(rate(&p.jitter.apply), 0.8), (rate(&p.grayscale), 0.2), (rate(&p.blur), 0.5), (rate(&p.flip), 0.5)]
    {
        assert!((got - want).abs() < 0.015, "rate {got} vs {want}");
    }
    let crop = p.crop.as_ref().expect("the default crop is not the identity");
    let area = (&crop.height * &crop.width / 1024.0).mean(Kind::Float).double_value(&[]);
    // U[0.2, 1] has mean 0.6; large non-square draws do not fit and are redrawn, which lowers it.
    assert!((0.5..0.6).contains(&area), "mean area {area}");
    let largest = (&crop.height * &crop.width / 1024.0).max().double_value(&[]);
    assert!(largest > 0.95, "largest area {largest}");
    let (lo, hi) = (scalar(&p.blur_sigma.min()), scalar(&p.blur_sigma.max()));
    assert!((0.1..0.11).contains(&lo) && (1.99..=2.0).contains(&hi));
    let hue = scalar(&p.jitter.hue.abs().max());
    assert!((0.099..=0.1).contains(&hue));
    assert!(with_seed(1, || ImageRecipe::disabled().sample(4, (32, 32), Device::Cpu)).crop.is_none());
}

#[test]
fn same_seed_same_views_different_seeds_differ() {
    let x = images(16);
    let family = ExpertImage::new(ImageRecipe::default()).unwrap();
    let a = family.view(&x, 42);
    assert!(a.equal(&family.view(&x, 42)));
    assert!(!a.equal(&family.view(&x, 43)));
    assert!(!family.view(&x, 2).equal(&family.view(&x, 3)));
    let spectral = ExpertSpectral::new(SpectralRecipe::default()).unwrap();
    let s = with_seed(1, || Tensor::rand([4, 64, 64], CPU));
    let view = |seed| with_seed(seed, || spectral.add_noise_db(&spectral.mask_power(&s)));
    assert!(view(5).equal(&view(5)));
    assert!(!view(5).equal(&view(6)));
    let wave = ExpertWaveform::new(WaveformRecipe::default()).unwrap();
    let w = with_seed(1, || Tensor::randn([4, 1000], CPU));
    assert!(wave.view_waveform(&w, 5).equal(&wave.view_waveform(&w, 5)));
    assert!(!wave.view_waveform(&w, 5).equal(&wave.view_waveform(&w, 6)));
}

#[test]
fn default_views_are_finite_with_the_configured_size() {
    let x = images(64);
    let family = ExpertImage::new(ImageRecipe::default()).unwrap();
    let v = family.view(&x, 7);
    assert_eq!(v.size(), [64, 3, 32, 32]);
    assert!(scalar(&v.isfinite().all()) == 1.0);
    // Normalised views have roughly zero mean and unit-scale spread.
    assert!(scalar(&v.mean(Kind::Float)).abs() < 1.0 && (0.2..3.0).contains(&scalar(&v.std(true))));
    let raw = family.augment(&x, 7);
    assert!(scalar(&raw.min()) >= 0.0 && scalar(&raw.max()) <= 1.0);
    let small = ExpertImage::new(ImageRecipe { output_size: [24, 20], ..ImageRecipe::default() }).unwrap();
    assert_eq!(small.view(&x, 7).size(), [64, 3, 24, 20]);
}

#[test]
fn recipes_parse_with_defaults_and_reject_bad_fields() {
    let r: ImageRecipe = serde_json::from_str(r#"{"flip_p": 0.0}"#).unwrap();
    assert_eq!(r, ImageRecipe { flip_p: 0.0, ..ImageRecipe::default() });
    let json = serde_json::to_string(&ImageRecipe::default()).unwrap();
    assert_eq!(serde_json::from_str::<ImageRecipe>(&json).unwrap(), ImageRecipe::default());
    assert!(serde_json::from_str::<ImageRecipe>(r#"{"flip": 0.5}"#).is_err());
    assert!(serde_json::from_str::<SpectralRecipe>(r#"{"mask": 1}"#).is_err());
    assert!(serde_json::from_str::<WaveformRecipe>(r#"{"crop": 1}"#).is_err());
    let err = ExpertImage::new(ImageRecipe { jitter_p: 1.5, ..ImageRecipe::default() }).unwrap_err().to_string();
    assert!(err.contains("jitter_p") && err.contains("1.5"), "{err}");
    assert!(ExpertImage::new(ImageRecipe { blur_truncate: 0.0, ..ImageRecipe::default() }).is_err());
    assert!(ExpertImage::new(ImageRecipe { crop_scale: [0.5, 0.2], ..ImageRecipe::default() }).is_err());
    assert!(ExpertWaveform::new(WaveformRecipe { crop_fraction: [0.0, 1.0], ..WaveformRecipe::default() }).is_err());
    assert!(ExpertSpectral::new(SpectralRecipe { noise_std_db: -1.0, ..SpectralRecipe::default() }).is_err());
    assert!(ExpertWaveform::new(WaveformRecipe { noise_scale: f64::NAN, ..WaveformRecipe::default() }).is_err());
}

#[test]
fn spectral_masks_zero_bounded_bands_of_power_and_the_noise_std_is_a_quarter_of_the_scale() {
    let n = 512;
    let power = Tensor::ones([n, 64, 64], CPU) * 3.0;
    let ops = ExpertSpectral::new(SpectralRecipe::default()).unwrap();
    let v = with_seed(1, || ops.mask_power(&power));
    // Zero power, not a value of the normalised spectrogram: the log turns it into the floor.
    let masked = v.eq(0.0);
    assert!(v.masked_select(&masked.logical_not()).eq(3.0).all().int64_value(&[]) == 1);
    // A masked row (frequency band) is zero across all frames; count those rows and columns.
    let freq_width = masked.all_dim(2, false).sum_dim_intlist(-1, false, Kind::Int64);
    let time_width = masked.all_dim(1, false).sum_dim_intlist(-1, false, Kind::Int64);
    for w in [&freq_width, &time_width] {
        assert!(scalar(&w.max()) <= 40.0 && scalar(&w.min()) >= 0.0);
        // Widths uniform in 0..=40: mean 20.
        assert!((scalar(&w.to_kind(Kind::Float).mean(Kind::Float)) - 20.0).abs() < 1.5);
    }
    // Everything outside the two bands is untouched.
    let total = scalar(&masked.to_kind(Kind::Float).sum(Kind::Float));
    let fw = freq_width.to_kind(Kind::Float);
    let tw = time_width.to_kind(Kind::Float);
    let expected = scalar(&((&fw + &tw) * 64.0 - &fw * &tw).sum(Kind::Float));
    assert_eq!(total, expected);
    let db = Tensor::zeros([n, 64, 64], CPU);
    let d = with_seed(2, || ops.add_noise_db(&db));
    let std = scalar(&d.std(true));
    assert!((std - 0.25 * 11.799).abs() < 0.01, "noise std {std} dB");
    assert!(scalar(&d.mean(Kind::Float)).abs() < 0.01);
}

#[test]
fn spectral_bands_stay_inside_short_axes() {
    let (start, width) = with_seed(3, || sample_bands(1000, 16, 40, Device::Cpu));
    assert!(scalar(&width.max()) == 16.0 && scalar(&(start + width).max()) <= 16.0);
}

#[test]
fn waveform_crop_keeps_the_specified_fraction_contiguously() {
    let recipe = WaveformRecipe { noise_p: 0.0, crop_fraction: [0.25, 0.25], ..WaveformRecipe::default() };
    let w = Tensor::ones([64, 1000], CPU);
    let v = ExpertWaveform::new(recipe).unwrap().view_waveform(&w, 9);
    let kept = v.ne(0.0);
    assert!(kept.sum_dim_intlist(1, false, Kind::Int64).eq(250).all().int64_value(&[]) == 1);
    // Contiguous: exactly one rising edge per row (or the window starts at sample 0).
    let k = kept.to_kind(Kind::Int64);
    let edges =
        (k.narrow(1, 1, 999) - k.narrow(1, 0, 999)).eq(1).sum_dim_intlist(1, false, Kind::Int64) + k.select(1, 0);
    assert!(edges.eq(1).all().int64_value(&[]) == 1);
    // Kept samples are the originals, so the values are untouched.
    assert!(v.masked_select(&kept).eq(1.0).all().int64_value(&[]) == 1);
    // The default fraction U[0.08, 1]: mean 0.54, never below 0.08.
    let v = ExpertWaveform::new(WaveformRecipe { noise_p: 0.0, ..Default::default() })
        .unwrap()
        .view_waveform(&Tensor::ones([4000, 1000], CPU), 10);
    let frac = v.ne(0.0).to_kind(Kind::Float).mean_dim(1, false, Kind::Float);
    // 80 of 1000 samples is 0.08 up to float rounding.
    assert!(scalar(&frac.min()) >= 0.0799 && (scalar(&frac.mean(Kind::Float)) - 0.54).abs() < 0.015);
}

#[test]
fn waveform_noise_is_the_published_white_noise_whatever_the_signal() {
    // The published construction: irfft of a standard-normal spectrum, std 1/√samples (0.0045 at
    // 50 000 samples), added at that level to loud and silent clips alike (not at an SNR).
    let t = 50_000;
    let noise = with_seed(11, || white_noise(16, t, Device::Cpu));
    let std = scalar(&noise.std(true));
    assert!((std - 0.004472).abs() < 0.0001, "white noise std {std}");
    // White: as much power in the top 1000 bins as in the bottom 1000 (above DC).
    let spec = noise.fft_rfft(t, -1, "backward").abs().square();
    let low = scalar(&spec.narrow(1, 1, 1000).mean(Kind::Float));
    let high = scalar(&spec.narrow(1, t / 2 - 1000, 1000).mean(Kind::Float));
    assert!((low / high - 1.0).abs() < 0.1, "low/high power {}", low / high);
    let recipe = WaveformRecipe { crop_p: 0.0, ..WaveformRecipe::default() };
    let ops = ExpertWaveform::new(recipe).unwrap();
    for level in [0.0, 1.0] {
        let clean = Tensor::ones([8, t], CPU) * level;
        let added = scalar(&(ops.view_waveform(&clean, 12) - &clean).std(true));
        assert!((added - 0.004472).abs() < 0.0002, "level {level}: added noise std {added}");
    }
}

#[test]
fn waveform_order_matters_and_both_orders_occur() {
    // With both ops on, crop-then-noise leaves noise outside the window; noise-then-crop zeroes it.
    let recipe = WaveformRecipe { crop_fraction: [0.5, 0.5], ..WaveformRecipe::default() };
    let v = ExpertWaveform::new(recipe).unwrap().view_waveform(&Tensor::ones([256, 1000], CPU), 13);
    let zeros = v.eq(0.0).sum_dim_intlist(1, false, Kind::Int64);
    let noise_last = scalar(&zeros.eq(0).to_kind(Kind::Float).mean(Kind::Float));
    assert!((noise_last - 0.5).abs() < 0.1, "fraction with noise applied last: {noise_last}");
    assert!(scalar(&zeros.eq(500).to_kind(Kind::Float).mean(Kind::Float)) + noise_last > 0.99);
}
