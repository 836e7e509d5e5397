fn main() {
    // The simulator needs no libtorch, but a workspace build links it in through featdrop-core.
    featdrop_build::torch_rpath();
}
