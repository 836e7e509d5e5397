// Affine instance norm (Ulyanov, Vedaldi and Lempitsky, "Instance Normalization: The Missing
// Ingredient for Fast Stylization", 2016) for float32 CPU tensors in the channels-last layout.
//
// Why it exists: libtorch's `instance_norm` reshapes its input to [1, N·C, H, W] and runs batch
// norm on that, which needs the NCHW layout; a channels-last input is copied to NCHW first, and
// the NCHW output then makes the next convolution copy it back. In the viewmaker, whose every
// convolution is followed by an instance norm, those copies (forward and backward) took about a
// sixth of the network's time on CPU. Here the statistics are taken in place, per example, from
// the [N, H·W, C] view that the channels-last layout already is: no copy, one pass for the mean,
// one for the variance, one for the output (the same passes backward).
//
// Statistics and gradient sums are accumulated in double, per example and channel, each example by
// one thread: how the examples are split between threads changes no number (dγ and dβ, summed over
// the examples afterwards, are libtorch's sums).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <vector>

#include "guarded.h"

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Sizes of the [N, P, C] view of a channels-last [N, C, H, W] tensor (P = H·W).
struct Shape {
  int64_t n, p, c;
};

// Where a gradient's values are: example n, row p, channel c at n·example + p·row + c.
struct GradStrides {
  int64_t example, row;
};

// y = (x − μ)·r·γ + β per example and channel, with μ and r = 1/√(σ² + eps) (biased σ²) written to
// `mean` and `rstd` ([N, C]) for the backward pass.
void forward_kernel(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                    Shape s, double eps) {
  at::parallel_for(0, s.n, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> acc(s.c);
    std::vector<float> scale(s.c);
    for (int64_t n = begin; n < end; ++n) {
      const float* xn = x + n * s.p * s.c;
      float* yn = y + n * s.p * s.c;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t p = 0; p < s.p; ++p) {
        for (int64_t c = 0; c < s.c; ++c) acc[c] += xn[p * s.c + c];
      }
      for (int64_t c = 0; c < s.c; ++c) mean[n * s.c + c] = static_cast<float>(acc[c] / s.p);
      // Two passes, not E[x²] − E[x]²: the variance of values far from zero stays exact.
      std::fill(acc.begin(), acc.end(), 0.0);
      const float* mu = mean + n * s.c;
      for (int64_t p = 0; p < s.p; ++p) {
        for (int64_t c = 0; c < s.c; ++c) {
          double d = static_cast<double>(xn[p * s.c + c]) - mu[c];
          acc[c] += d * d;
        }
      }
      for (int64_t c = 0; c < s.c; ++c) {
        double r = 1.0 / std::sqrt(acc[c] / s.p + eps);
        rstd[n * s.c + c] = static_cast<float>(r);
        scale[c] = static_cast<float>(w[c] * r);
      }
      // (x − μ)·scale + β rather than x·scale + (β − μ·scale): the latter cancels two large terms
      // when |μ| is large against the spread.
      for (int64_t p = 0; p < s.p; ++p) {
        for (int64_t c = 0; c < s.c; ++c) yn[p * s.c + c] = (xn[p * s.c + c] - mu[c]) * scale[c] + b[c];
      }
    }
  });
}

// The gradients of forward_kernel's output: per example and channel, the sums Σg and Σg(x − μ)
// give dβ and dγ (written per example, [N, C], for the caller to sum over examples) and
// dx = γr·(g − Σg/P) − γr³·(x − μ)·Σg(x − μ)/P, the batch-norm backward over P values. `g` is read
// with its own example and row strides (`gs`).
void backward_kernel(const float* g, GradStrides gs, const float* x, const float* w, const float* mean,
                     const float* rstd, float* dx, float* dw, float* db, Shape s) {
  at::parallel_for(0, s.n, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> sg(s.c), sgd(s.c);
    std::vector<float> a(s.c), k(s.c), off(s.c);
    for (int64_t n = begin; n < end; ++n) {
      const float* gn = g + n * gs.example;
      const float* xn = x + n * s.p * s.c;
      const float* mu = mean + n * s.c;
      const float* r = rstd + n * s.c;
      std::fill(sg.begin(), sg.end(), 0.0);
      std::fill(sgd.begin(), sgd.end(), 0.0);
      for (int64_t p = 0; p < s.p; ++p) {
        for (int64_t c = 0; c < s.c; ++c) {
          double gv = gn[p * gs.row + c];
          sg[c] += gv;
          sgd[c] += gv * (static_cast<double>(xn[p * s.c + c]) - mu[c]);
        }
      }
      for (int64_t c = 0; c < s.c; ++c) {
        db[n * s.c + c] = static_cast<float>(sg[c]);
        dw[n * s.c + c] = static_cast<float>(sgd[c] * r[c]);
      }
      if (dx == nullptr) continue;
      float* dxn = dx + n * s.p * s.c;
      for (int64_t c = 0; c < s.c; ++c) {
        double gr = static_cast<double>(w[c]) * r[c];
        a[c] = static_cast<float>(gr);
        k[c] = static_cast<float>(-gr * r[c] * r[c] * sgd[c] / s.p);
        off[c] = static_cast<float>(-gr * sg[c] / s.p);
      }
      for (int64_t p = 0; p < s.p; ++p) {
        for (int64_t c = 0; c < s.c; ++c) {
          int64_t i = p * s.c + c;
          dxn[i] = a[c] * gn[p * gs.row + c] + k[c] * (xn[i] - mu[c]) + off[c];
        }
      }
    }
  });
}

Shape shape_of(const at::Tensor& x) {
  return {x.size(0), x.size(2) * x.size(3), x.size(1)};
}

// The [N, P, C] strides of a channels-last gradient whose rows of C values may be spaced wider than
// C: the gradient of a channel slice, which is what a concatenation's backward hands each of its
// inputs (the viewmaker concatenates a noise channel after every residual block). Without them the
// slice would be copied first. Returns false for anything else (then the caller copies).
bool grad_strides(const at::Tensor& g, GradStrides* out) {
  int64_t n = g.size(0), c = g.size(1), h = g.size(2), w = g.size(3);
  if (c > 1 && g.stride(1) != 1) return false;
  int64_t row = w > 1 ? g.stride(3) : (h > 1 ? g.stride(2) : c);
  if ((h > 1 && w > 1 && g.stride(2) != w * row) || row < c) return false;
  int64_t example = n > 1 ? g.stride(0) : h * w * row;
  if (example < h * w * row) return false;
  *out = {example, row};
  return true;
}

struct InstanceNormChannelsLast : public torch::autograd::Function<InstanceNormChannelsLast> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            double eps) {
    Shape s = shape_of(x);
    auto y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    auto mean = at::empty({s.n, s.c}, x.options());
    auto rstd = at::empty({s.n, s.c}, x.options());
    auto wc = w.contiguous(), bc = b.contiguous();
    forward_kernel(x.const_data_ptr<float>(), wc.const_data_ptr<float>(), bc.const_data_ptr<float>(),
                   y.mutable_data_ptr<float>(), mean.mutable_data_ptr<float>(), rstd.mutable_data_ptr<float>(), s,
                   eps);
    ctx->save_for_backward({x, wc, mean, rstd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    Shape s = shape_of(x);
    at::Tensor g = grads[0];
    GradStrides gs;
    if (!grad_strides(g, &gs)) {
      g = g.contiguous(at::MemoryFormat::ChannelsLast);
      gs = {s.p * s.c, s.c};
    }
    bool want_dx = ctx->needs_input_grad(0);
    at::Tensor dx = want_dx ? at::empty_like(x, at::MemoryFormat::ChannelsLast) : at::Tensor();
    auto dw = at::empty({s.n, s.c}, x.options());
    auto db = at::empty({s.n, s.c}, x.options());
    backward_kernel(g.const_data_ptr<float>(), gs, x.const_data_ptr<float>(), w.const_data_ptr<float>(),
                    mean.const_data_ptr<float>(), rstd.const_data_ptr<float>(),
                    want_dx ? dx.mutable_data_ptr<float>() : nullptr, dw.mutable_data_ptr<float>(),
                    db.mutable_data_ptr<float>(), s);
    return {dx, dw.sum(0), db.sum(0), at::Tensor()};
  }
};

}  // namespace

extern "C" {

// The fused kernel for a float32, 4-d, channels-last-contiguous CPU `x` and float32 CPU weight and
// bias of C values each; anything else is refused with a message (the Rust side sends other
// tensors to libtorch's own instance norm).
char* fdx_instance_norm_channels_last(const at::Tensor* x, const at::Tensor* w, const at::Tensor* b, double eps,
                                      at::Tensor** out) {
  return fdx::guarded([&] {
    TORCH_CHECK(x != nullptr && x->defined() && w != nullptr && w->defined() && b != nullptr && b->defined(),
                "instance_norm_channels_last: undefined tensor");
    TORCH_CHECK(x->dim() == 4 && x->is_contiguous(at::MemoryFormat::ChannelsLast),
                "instance_norm_channels_last: needs a 4-d channels-last tensor, got sizes ", x->sizes(),
                " and strides ", x->strides());
    for (const at::Tensor* t : {x, w, b}) {
      TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat,
                  "instance_norm_channels_last: needs float32 CPU tensors, got ", t->scalar_type(), " on ",
                  t->device());
    }
    TORCH_CHECK(w->numel() == x->size(1) && b->numel() == x->size(1), "instance_norm_channels_last: ",
                x->size(1), " channels but ", w->numel(), " weights and ", b->numel(), " biases");
    TORCH_CHECK(x->size(2) * x->size(3) > 0, "instance_norm_channels_last: empty spatial extent ", x->sizes());
    *out = new at::Tensor(InstanceNormChannelsLast::apply(*x, *w, *b, eps));
  });
}

}  // extern "C"
