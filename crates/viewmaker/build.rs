fn main() {
    featdrop_build::link_torch();
}
