fn main() {
    // Only the libtorch-backed part of this crate needs linking help.
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        featdrop_build::link_torch();
    }
}
