// C shim over the parts of libtorch that tch 0.24 does not bind: memory formats, the
// autocast state, the determinism switches of the global context and the (Kineto) profiler. Every entry point catches all C++ exceptions and reports them as a
// heap-allocated message (freed by `fdx_free_error`), because unwinding across the FFI
// boundary into Rust is undefined behaviour. A null return means success.
//
// Tensors cross the boundary as `at::Tensor*`, the same representation tch/torch-sys use for
// `C_tensor`: results are allocated with `new`, so tch's `Tensor::from_ptr` can take ownership and
// free them with `delete` (torch-sys's `at_free`).

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include "guarded.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <set>
#include <stdexcept>
#include <string>

namespace {

using fdx::guarded;

// The Rust side passes its own small codes rather than c10::DeviceType values, so the two sides
// do not depend on the numbering of an enum that libtorch may change.
c10::DeviceType device_type_of(int code) {
  switch (code) {
    case 0:
      return c10::DeviceType::CPU;
    case 1:
      return c10::DeviceType::CUDA;
    case 2:
      return c10::DeviceType::MPS;
    default:
      TORCH_CHECK(false, "featdrop-torch-ext: unknown device code ", code);
  }
}

}  // namespace

extern "C" {

void fdx_free_error(char* err) { free(err); }

char* fdx_to_channels_last(const at::Tensor* t, at::Tensor** out) {
  return guarded([&] {
    TORCH_CHECK(t != nullptr && t->defined(), "to_channels_last: undefined tensor");
    *out = new at::Tensor(t->contiguous(at::MemoryFormat::ChannelsLast));
  });
}

char* fdx_is_channels_last(const at::Tensor* t, int* out) {
  return guarded([&] {
    TORCH_CHECK(t != nullptr && t->defined(), "is_channels_last: undefined tensor");
    *out = t->is_contiguous(at::MemoryFormat::ChannelsLast) ? 1 : 0;
  });
}

// Re-lays a parameter out as channels-last *in place*: `set_data` swaps the storage and strides of
// the existing TensorImpl, so every at::Tensor sharing it (the VarStore's entry, the optimiser's
// parameter list) sees the new layout, and its autograd identity (leaf, requires_grad) is kept.
char* fdx_set_channels_last(at::Tensor* t, int* changed) {
  return guarded([&] {
    TORCH_CHECK(t != nullptr && t->defined(), "set_channels_last: undefined tensor");
    *changed = 0;
    if (t->dim() != 4 || t->is_contiguous(at::MemoryFormat::ChannelsLast)) {
      return;
    }
    // No graph must record the copy: it is a re-layout of a leaf, not a computation on it.
    at::NoGradGuard no_grad;
    at::Tensor relaid = t->detach().contiguous(at::MemoryFormat::ChannelsLast);
    t->set_data(relaid);
    *changed = 1;
  });
}

char* fdx_autocast_state(int device, int* enabled, int* dtype) {
  return guarded([&] {
    auto dt = device_type_of(device);
    *enabled = at::autocast::is_autocast_enabled(dt) ? 1 : 0;
    *dtype = static_cast<int>(at::autocast::get_autocast_dtype(dt));
  });
}

// Mirrors torch.autocast.__enter__: remember the previous state, set the new one, nest.
char* fdx_autocast_enter(int device, int dtype, int* prev_enabled, int* prev_dtype, int* prev_cache) {
  return guarded([&] {
    auto dt = device_type_of(device);
    TORCH_CHECK(at::autocast::is_autocast_available(dt), "autocast is not available for device type ",
                c10::DeviceTypeName(dt));
    auto st = static_cast<at::ScalarType>(dtype);
    TORCH_CHECK(st == at::kBFloat16 || st == at::kHalf, "autocast dtype must be BFloat16 or Half, got ", st);
    *prev_cache = at::autocast::is_autocast_cache_enabled() ? 1 : 0;
    *prev_enabled = at::autocast::is_autocast_enabled(dt) ? 1 : 0;
    *prev_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dt));
    at::autocast::set_autocast_enabled(dt, true);
    at::autocast::set_autocast_dtype(dt, st);
    at::autocast::increment_nesting();
    at::autocast::set_autocast_cache_enabled(true);
  });
}

// Mirrors torch.autocast.__exit__: the weight-cast cache is only valid while some autocast scope
// is open, so it is cleared when the outermost one closes.
char* fdx_autocast_exit(int device, int prev_enabled, int prev_dtype, int prev_cache) {
  return guarded([&] {
    auto dt = device_type_of(device);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(dt, prev_enabled != 0);
    at::autocast::set_autocast_dtype(dt, static_cast<at::ScalarType>(prev_dtype));
    at::autocast::set_autocast_cache_enabled(prev_cache != 0);
  });
}

// What torch.use_deterministic_algorithms(True), torch.backends.cudnn.deterministic = True,
// torch.backends.cudnn.benchmark = False and torch.backends.{cuda.matmul,cudnn}.allow_tf32 = False
// set from Python, in libtorch's process-wide context (`train.deterministic`). Off restores
// libtorch's own defaults for these flags (TF32 off for cuBLAS, on for cuDNN). The oneDNN (CPU)
// convolutions get the same treatment as cuDNN's.
char* fdx_set_deterministic(int on) {
  return guarded([&] {
    auto& ctx = at::globalContext();
    bool det = on != 0;
    ctx.setDeterministicCuDNN(det);
    ctx.setDeterministicMkldnn(det);
    ctx.setBenchmarkCuDNN(false);
    ctx.setDeterministicAlgorithms(det, /*warn_only=*/false);
    ctx.setAllowTF32CuBLAS(false);
    ctx.setAllowTF32CuDNN(!det);
    ctx.setAllowTF32OneDNN(false);
  });
}

// The flags fdx_set_deterministic sets, read back, as bits: 1 cuDNN deterministic, 2 cuDNN
// benchmark, 4 deterministic algorithms, 8 warn only, 16 TF32 in cuBLAS, 32 TF32 in cuDNN.
char* fdx_deterministic_state(int* bits) {
  return guarded([&] {
    auto& ctx = at::globalContext();
    *bits = (ctx.deterministicCuDNN() ? 1 : 0) | (ctx.benchmarkCuDNN() ? 2 : 0) |
            (ctx.deterministicAlgorithms() ? 4 : 0) | (ctx.deterministicAlgorithmsWarnOnly() ? 8 : 0) |
            (ctx.allowTF32CuBLAS() ? 16 : 0) | (ctx.allowTF32CuDNN() ? 32 : 0);
  });
}

// The profiler torch.profiler drives from Python, driven from here instead, so that featdrop's
// step and the PyTorch pipeline's are profiled by the same code and saved in the same Chrome-trace
// format (`cargo xtask bench reference --profile` compares them op by op).
char* fdx_profiler_start(int with_cuda) {
  return guarded([&] {
    using namespace torch::profiler::impl;
    ProfilerConfig config(ProfilerState::KINETO);
    std::set<ActivityType> activities{ActivityType::CPU};
    if (with_cuda != 0) {
      activities.insert(ActivityType::CUDA);
    }
    torch::autograd::profiler::prepareProfiler(config, activities);
    torch::autograd::profiler::enableProfiler(config, activities);
  });
}

char* fdx_profiler_stop(const char* trace_path) {
  return guarded([&] {
    auto result = torch::autograd::profiler::disableProfiler();
    if (!result) {
      throw std::runtime_error("the profiler was not running");
    }
    result->save(trace_path);
  });
}

}  // extern "C"
