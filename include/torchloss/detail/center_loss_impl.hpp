#pragma once
/// \file center_loss_impl.hpp
/// \brief The machinery of center loss: the fused CPU loops, the device-agnostic ATen path,
/// the fused CUDA kernels through the registry, the distributed merge of per-class sums, and
/// the custom autograd function.
///
/// Notation: features x [N, D], labels y [N], centers c [C, D], diff_i = x_i − c_{y_i}.
/// Every path costs O(N·D) time and memory, independent of C (learnable centers excepted:
/// their gradient is a dense [C, D] tensor, as the optimizer that consumes it needs).
/// Per-class sums accumulate in float64 (CPU, ATen and deterministic CUDA paths), so the
/// float32 sums of a few samples are exact and do not depend on the order in which ranks or
/// threads add them; the atomic CUDA update adds α·diff_i / (1 + n_j) straight into the centers.

#include <torchloss/detail/checks.hpp>
#include <torchloss/detail/cuda_registry.hpp>
#include <torchloss/detail/kernel_utils.hpp>
#include <torchloss/detail/reduction.hpp>
#include <torchloss/detail/state_lock.hpp>
#include <torchloss/distributed.hpp>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <vector>

namespace torchloss {
namespace detail {

/// Public name of the functional form, the prefix of its error messages.
constexpr const char* kCenterLossFn = "torchloss::center_loss";
/// Public name of the module, the prefix of its constructor's error messages.
constexpr const char* kCenterLossModule = "torchloss::CenterLoss";

/// Which implementation computes a call.
enum class CenterLossPath : int64_t {
  cpu_fused = 0,     ///< fused loops over raw pointers (CPU tensors)
  cuda_kernels = 1,  ///< the kernels of torchloss::cuda, through center_loss_cuda_ops
  aten = 2,          ///< ATen ops: any device, and CPU when force_aten_path is set
};

/// The path for tensors on `device`: force_aten_path (tests) selects the ATen path on every
/// device, CUDA tensors take the kernels when they were compiled into the program.
inline CenterLossPath center_loss_path(const torch::Device& device) {
  if (force_aten_path) return CenterLossPath::aten;
  if (device.is_cpu()) return CenterLossPath::cpu_fused;
  if (device.is_cuda() && center_loss_cuda_kernels_registered()) return CenterLossPath::cuda_kernels;
  return CenterLossPath::aten;
}

/// Raises the error for the first label outside [0, num_classes).
inline void check_center_labels(const torch::Tensor& labels, int64_t num_classes) {
  const auto bad = (labels < 0) | (labels >= num_classes);
  if (!bad.any().item<bool>()) return;
  const int64_t value = labels.masked_select(bad)[0].item<int64_t>();
  TORCH_CHECK(false, kCenterLossFn, ": labels holds ", value, ", outside [0, num_classes) = [0, ", num_classes,
              ")");
}

/// Forward results: diff [N, D] and the per-sample losses ½‖diff_i‖² [N], in the compute dtype.
struct CenterForward {
  torch::Tensor diff, losses;
};

/// Fused CPU forward, one pass over the batch: each row reads x_i and c_{y_i} once, writes
/// diff_i and its half squared norm. T is the features' dtype (float16/bfloat16 are
/// widened on the fly), Acc the centers' (the compute dtype).
template <typename T, typename Acc>
CenterForward center_forward_cpu(const torch::Tensor& features, const torch::Tensor& centers,
                                 const torch::Tensor& labels) {
  const int64_t n = features.size(0), d = features.size(1), num_classes = centers.size(0);
  CenterForward out;
  out.diff = torch::empty({n, d}, centers.options());
  out.losses = torch::empty({n}, centers.options());
  const T* x = features.data_ptr<T>();
  const Acc* c = centers.data_ptr<Acc>();
  const int64_t* y = labels.data_ptr<int64_t>();
  Acc* diff = out.diff.data_ptr<Acc>();
  Acc* losses = out.losses.data_ptr<Acc>();
  std::atomic<bool> bad_label{false};
  at::parallel_for(0, n, std::max<int64_t>(1, 32768 / d), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      Acc* row = diff + i * d;
      const int64_t label = y[i];
      if (label < 0 || label >= num_classes) {
        bad_label = true;
        std::fill(row, row + d, Acc(0));
        losses[i] = 0;
        continue;
      }
      const T* xr = x + i * d;
      const Acc* cr = c + label * d;
      for (int64_t k = 0; k < d; ++k) row[k] = static_cast<Acc>(xr[k]) - cr[k];
      losses[i] = Acc(0.5) * row_sum<Acc>(d, [&](int64_t k) { return row[k] * row[k]; });
    }
  });
  if (bad_label) check_center_labels(labels, num_classes);
  return out;
}

/// Device-agnostic forward with ATen ops: a gather of c_y, never an N×C matrix.
inline CenterForward center_forward_aten(const torch::Tensor& features, const torch::Tensor& centers,
                                         const torch::Tensor& labels) {
  check_center_labels(labels, centers.size(0));
  CenterForward out;
  out.diff = features.to(centers.scalar_type()) - centers.index_select(0, labels);
  out.losses = 0.5 * (out.diff * out.diff).sum(1);
  return out;
}

/// The statistics of the update: the K classes present (ascending, int64 [K]), Σ_{y_i = j} diff_i
/// (float64 [K, D]) and n_j (float64 [K]).
struct ClassSums {
  torch::Tensor classes, sums, counts;
};

/// The samples grouped by class: `order` is a stable sort of the sample indices by label and
/// segment k holds order[starts[k] .. starts[k + 1]), all of one class (O(N log N), no O(C) work).
struct LabelSegmentsCpu {
  std::vector<int64_t> order, starts;
  int64_t size() const { return static_cast<int64_t>(starts.size()) - 1; }
};

inline LabelSegmentsCpu label_segments_cpu(const int64_t* y, int64_t n) {
  LabelSegmentsCpu s;
  s.order.resize(static_cast<size_t>(n));
  std::iota(s.order.begin(), s.order.end(), int64_t(0));
  std::stable_sort(s.order.begin(), s.order.end(), [y](int64_t a, int64_t b) { return y[a] < y[b]; });
  for (int64_t r = 0; r < n; ++r) {
    if (r == 0 || y[s.order[r]] != y[s.order[r - 1]]) s.starts.push_back(r);
  }
  s.starts.push_back(n);
  return s;
}

/// Σ diff over segment k into `acc` [D] (float64), in batch order.
template <typename Acc>
inline void segment_sum_cpu(const Acc* diff, int64_t d, const LabelSegmentsCpu& s, int64_t k, double* acc) {
  std::fill(acc, acc + d, 0.0);
  for (int64_t r = s.starts[k]; r < s.starts[k + 1]; ++r) {
    const Acc* row = diff + s.order[r] * d;
    for (int64_t j = 0; j < d; ++j) acc[j] += static_cast<double>(row[j]);
  }
}

/// c ← c + step · sum on one center row, computed in float64 and rounded once. The one
/// formula of every CPU update, so the fused and the distributed CPU paths agree bit for bit.
template <typename Acc>
inline void apply_row_cpu(Acc* row, const double* sum, double step, int64_t d) {
  for (int64_t j = 0; j < d; ++j) row[j] = static_cast<Acc>(static_cast<double>(row[j]) + step * sum[j]);
}

/// Grain (segments per task) of the per-class loops: about 32K elements of diff per task.
inline int64_t segment_grain(int64_t n, int64_t d, int64_t segments) {
  const int64_t rows_per_segment = std::max<int64_t>(1, n / std::max<int64_t>(1, segments));
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, d * rows_per_segment));
}

/// Fused CPU update of one process: per class present, its sum accumulates in a float64 row
/// buffer [D] that stays in L1, and its center is rewritten at once:
/// c_j ← c_j + α Σ_{y_i = j} diff_i / (1 + n_j), the paper's c_j − α Δc_j. O(N log N + N·D).
template <typename Acc>
void update_centers_cpu(const torch::Tensor& centers_t, const torch::Tensor& diff_t, const torch::Tensor& labels,
                        double alpha) {
  const int64_t n = diff_t.size(0), d = diff_t.size(1);
  const LabelSegmentsCpu s = label_segments_cpu(labels.data_ptr<int64_t>(), n);
  const int64_t* y = labels.data_ptr<int64_t>();
  const Acc* diff = diff_t.data_ptr<Acc>();
  Acc* centers = centers_t.data_ptr<Acc>();
  at::parallel_for(0, s.size(), segment_grain(n, d, s.size()), [&](int64_t begin, int64_t end) {
    std::vector<double> acc(static_cast<size_t>(d));
    for (int64_t k = begin; k < end; ++k) {
      segment_sum_cpu(diff, d, s, k, acc.data());
      const double count = static_cast<double>(s.starts[k + 1] - s.starts[k]);
      apply_row_cpu(centers + y[s.order[s.starts[k]]] * d, acc.data(), alpha / (1.0 + count), d);
    }
  });
}

/// Fused CPU per-class sums (for the all-reduce of the distributed update): the K classes
/// present, their float64 sums [K, D] and counts [K], summed as update_centers_cpu sums them.
template <typename Acc>
ClassSums class_sums_cpu(const torch::Tensor& diff_t, const torch::Tensor& labels) {
  const int64_t n = diff_t.size(0), d = diff_t.size(1);
  const int64_t* y = labels.data_ptr<int64_t>();
  const LabelSegmentsCpu s = label_segments_cpu(y, n);
  const int64_t k_classes = s.size();
  const auto f64 = diff_t.options().dtype(torch::kDouble);
  ClassSums out;
  out.classes = torch::empty({k_classes}, labels.options());
  out.sums = torch::empty({k_classes, d}, f64);
  out.counts = torch::empty({k_classes}, f64);
  const Acc* diff = diff_t.data_ptr<Acc>();
  int64_t* classes = out.classes.data_ptr<int64_t>();
  double* sums = out.sums.data_ptr<double>();
  double* counts = out.counts.data_ptr<double>();
  at::parallel_for(0, k_classes, segment_grain(n, d, k_classes), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      classes[k] = y[s.order[s.starts[k]]];
      counts[k] = static_cast<double>(s.starts[k + 1] - s.starts[k]);
      segment_sum_cpu(diff, d, s, k, sums + k * d);
    }
  });
  return out;
}

/// Fused CPU update of the K rows of summed statistics, in place:
/// c_{classes_k} ← c + α sums_k / (1 + counts_k).
template <typename Acc>
void apply_class_sums_cpu(const torch::Tensor& centers_t, const ClassSums& s, double alpha) {
  const int64_t k_classes = s.classes.numel(), d = centers_t.size(1);
  Acc* centers = centers_t.data_ptr<Acc>();
  const int64_t* classes = s.classes.data_ptr<int64_t>();
  const double* sums = s.sums.data_ptr<double>();
  const double* counts = s.counts.data_ptr<double>();
  at::parallel_for(0, k_classes, std::max<int64_t>(1, 32768 / d), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      apply_row_cpu(centers + classes[k] * d, sums + k * d, alpha / (1.0 + counts[k]), d);
    }
  });
}

/// Per-class sums with ATen ops (any device): unique labels, then index_add_ in float64.
inline ClassSums class_sums_aten(const torch::Tensor& diff, const torch::Tensor& labels) {
  torch::Tensor inverse, counts;
  ClassSums s;
  std::tie(s.classes, inverse, counts) = at::_unique2(labels, /*sorted=*/true, /*return_inverse=*/true,
                                                      /*return_counts=*/true);
  const auto f64 = diff.options().dtype(torch::kDouble);
  s.sums = torch::zeros({s.classes.numel(), diff.size(1)}, f64).index_add_(0, inverse.view({-1}), diff.to(torch::kDouble));
  s.counts = counts.to(torch::kDouble);
  return s;
}

/// The update of the K rows present with ATen ops (any device), in place.
inline void apply_class_sums_aten(const torch::Tensor& centers, const ClassSums& s, double alpha) {
  if (s.classes.numel() == 0) return;
  const auto rows = centers.index_select(0, s.classes).to(torch::kDouble);
  const auto step = torch::full_like(s.counts, alpha) / (s.counts + 1.0);
  // index_put_ (not index_copy_): deterministic on CUDA under deterministicAlgorithms() in
  // every LibTorch version; the classes are distinct.
  centers.index_put_({s.classes}, (rows + s.sums * step.unsqueeze(1)).to(centers.scalar_type()));
}

/// Sums the statistics of every rank through `all_reduce`: first the counts as a dense [C]
/// vector (8·C bytes, the one C-sized message), which tells every rank the same set of K
/// classes present anywhere; then the sums of those K classes [K, D]. Every rank calls
/// `all_reduce` the same number of times with the same shapes, even when its own batch is
/// empty.
inline ClassSums all_reduce_class_sums(const ClassSums& local, int64_t num_classes, const AllReduceFn& all_reduce) {
  const int64_t d = local.sums.size(1);
  auto dense_counts = torch::zeros({num_classes}, local.counts.options());
  dense_counts.index_put_({local.classes}, local.counts);
  all_reduce(dense_counts);
  ClassSums global;
  global.classes = dense_counts.nonzero().view({-1});
  global.counts = dense_counts.index_select(0, global.classes);
  global.sums = torch::zeros({global.classes.numel(), d}, local.sums.options());
  if (global.classes.numel() == 0) return global;  // the same on every rank: no second call
  global.sums.index_put_({torch::searchsorted(global.classes, local.classes)}, local.sums);
  all_reduce(global.sums);
  return global;
}

/// What backward needs besides the saved tensors; travels in the autograd context as a
/// capsule (an IValue cannot hold the std::function of the all-reduce).
struct CenterLossState : torch::CustomClassHolder {
  torch::Tensor centers;       ///< the tensor the update writes (undefined when there is no update)
  AllReduceFn all_reduce;      ///< empty: one process
  double alpha = 0.5;          ///< update rate α
  int64_t reduction = 1;       ///< at::Reduction code
  double denominator = 1;      ///< N, the kMean divisor
  bool update = false;         ///< apply the paper's update in backward
  CenterLossPath path = CenterLossPath::aten;
  torch::ScalarType features_dtype = torch::kFloat;
  std::vector<int64_t> centers_sizes;  ///< [C, D], for the gradient of learnable centers
};

/// Applies the update c_j ← c_j + α Σ diff_i / (1 + n_j), with sums and counts all-reduced
/// when the state holds an all-reduce.
inline void update_centers(const CenterLossState& state, const torch::Tensor& diff, const torch::Tensor& labels) {
  torch::NoGradGuard no_grad;
  const torch::Tensor& centers = state.centers;
  // A read-modify-write of the centers: one update at a time per centers tensor, so threads
  // sharing one module lose none (each update still uses the centers its forward saw).
  const auto lock = state_lock(centers);
  TORCH_CHECK(centers.scalar_type() == diff.scalar_type() && centers.device() == diff.device() &&
                  centers.sizes().vec() == state.centers_sizes,
              kCenterLossFn, ": centers changed dtype, device or shape between forward and backward (now ",
              centers.scalar_type(), " ", shape_str(centers), " on ", centers.device(), ")");
  // The fused paths write through a raw pointer: a non-contiguous centers tensor (a user's
  // view) is updated through a contiguous copy.
  const torch::Tensor target = centers.is_contiguous() ? centers : centers.contiguous();
  const int64_t num_classes = centers.size(0);
  switch (state.path) {
    case CenterLossPath::cpu_fused:
      AT_DISPATCH_FLOATING_TYPES(diff.scalar_type(), "torchloss_center_update", [&] {
        if (state.all_reduce) {
          const ClassSums s = all_reduce_class_sums(class_sums_cpu<scalar_t>(diff, labels), num_classes,
                                                    state.all_reduce);
          apply_class_sums_cpu<scalar_t>(target, s, state.alpha);
        } else {
          update_centers_cpu<scalar_t>(target, diff, labels, state.alpha);
        }
      });
      break;
    case CenterLossPath::cuda_kernels: {
      const auto& ops = center_loss_cuda_ops;
      if (state.all_reduce) {
        ClassSums s;
        ops.class_sums(diff, labels, s.classes, s.sums, s.counts);
        s = all_reduce_class_sums(s, num_classes, state.all_reduce);
        if (s.classes.numel() > 0) ops.apply_class_sums(target, s.classes, s.sums, s.counts, state.alpha);
      } else {
        ops.update(target, diff, labels, state.alpha, at::globalContext().deterministicAlgorithms());
      }
      break;
    }
    case CenterLossPath::aten: {
      ClassSums s = class_sums_aten(diff, labels);
      if (state.all_reduce) s = all_reduce_class_sums(s, num_classes, state.all_reduce);
      apply_class_sums_aten(target, s, state.alpha);
      break;
    }
  }
  if (!target.is_same(centers)) centers.copy_(target);
}

/// The options of one call, as the autograd function receives them.
struct CenterLossConfig {
  double alpha;
  int64_t reduction;
  bool update;
  AllReduceFn all_reduce;
};

/// `value` + (t − t.detach()): the value of `value` with the derivatives of t (0 where t is
/// not finite, so the value stays exact there too).
inline torch::Tensor with_derivatives_of(const torch::Tensor& value, const torch::Tensor& t) {
  const auto delta = t - t.detach();
  return value + torch::where(t.detach().isfinite(), delta, torch::zeros_like(delta));
}

/// The saved diff x − c_y, differentiable in the features and (when saved) learnable centers.
inline torch::Tensor differentiable_diff(const torch::Tensor& diff, const torch::Tensor& features,
                                         const torch::Tensor& centers, const torch::Tensor& labels) {
  auto result = with_derivatives_of(diff, features.to(diff.scalar_type()));
  if (centers.defined()) result = result - with_derivatives_of(torch::zeros_like(diff), centers.index_select(0, labels));
  return result;
}

/// Center loss as a custom autograd function. Forward: ½‖x_i − c_{y_i}‖² per sample, reduced.
/// Backward: the feature gradient g·diff_i (÷N for kMean), a gradient −Σ_{y_i=j} g·diff_i for
/// centers that require grad, and, when the config asks for it, the in-place update of the
/// centers from the diff saved at forward time (so from the centers as they were then),
/// unscaled by the incoming gradient g.
struct CenterLossFunction : public torch::autograd::Function<CenterLossFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& features,
                                                const torch::Tensor& labels, const torch::Tensor& centers,
                                                CenterLossConfig cfg) {
    const auto path = center_loss_path(features.device());
    const auto x = features.contiguous();
    const auto c = centers.contiguous();
    const auto y = labels.contiguous();
    CenterForward f;
    switch (path) {
      case CenterLossPath::cpu_fused:
        AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "torchloss_center_forward", [&] {
          using Acc = scalar_t;
          if (x.scalar_type() == torch::kHalf) {
            f = center_forward_cpu<at::Half, Acc>(x, c, y);
          } else if (x.scalar_type() == torch::kBFloat16) {
            f = center_forward_cpu<at::BFloat16, Acc>(x, c, y);
          } else {
            f = center_forward_cpu<Acc, Acc>(x, c, y);
          }
        });
        break;
      case CenterLossPath::cuda_kernels:
        if (!center_loss_cuda_ops.forward(x, c, y, f.diff, f.losses)) check_center_labels(y, c.size(0));
        break;
      case CenterLossPath::aten:
        f = center_forward_aten(x, c, y);
        break;
    }
    auto state = c10::make_intrusive<CenterLossState>();
    state->alpha = cfg.alpha;
    state->reduction = cfg.reduction;
    state->denominator = static_cast<double>(features.size(0));
    state->update = cfg.update;
    state->path = path;
    state->features_dtype = features.scalar_type();
    state->centers_sizes = centers.sizes().vec();
    if (cfg.update) {
      state->centers = centers;
      state->all_reduce = std::move(cfg.all_reduce);
    }
    // The features, and learnable centers, as well: a backward under create_graph
    // differentiates through them (centers that the update rewrites in place are constants
    // and are not saved, which would make a later backward refuse them as modified).
    ctx->save_for_backward({f.diff, y, features, centers.requires_grad() ? centers : torch::Tensor()});
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return {reduce_loss(f.losses, cfg.reduction, state->denominator).to(features.scalar_type())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& diff = saved[0];
    const auto& labels = saved[1];
    const auto state = c10::static_intrusive_pointer_cast<CenterLossState>(ctx->saved_data["state"].toCapsule());
    torch::Tensor grad_features, grad_centers;
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(2)) {
      auto scale = element_grad_scale(grad_outputs[0].to(diff.scalar_type()), state->reduction, state->denominator);
      if (state->reduction == at::Reduction::None) scale = scale.reshape({-1, 1});
      // Under create_graph: diff with the derivatives of x − c_y attached (its value
      // unchanged), so the gradient is differentiable in the features and learnable centers.
      const auto scaled = (torch::GradMode::is_enabled() ? differentiable_diff(diff, saved[2], saved[3], labels) : diff) * scale;
      if (ctx->needs_input_grad(0)) grad_features = scaled.to(state->features_dtype);
      if (ctx->needs_input_grad(2)) {
        grad_centers = torch::zeros(state->centers_sizes, diff.options()).index_add_(0, labels, -scaled);
      }
    }
    if (state->update) update_centers(*state, diff, labels);
    return {grad_features, torch::Tensor(), grad_centers, torch::Tensor()};
  }
};

/// Validates the arguments of a center-loss call (messages start with kCenterLossFn).
inline void check_center_loss_args(const torch::Tensor& features, const torch::Tensor& labels,
                                   const torch::Tensor& centers, double alpha, bool update) {
  const char* fn = kCenterLossFn;
  check_logits(fn, features, "features");
  TORCH_CHECK(features.dim() == 2, fn, ": features must have shape [N, feature_dim], got ", shape_str(features));
  TORCH_CHECK(centers.defined(), fn, ": centers is an undefined tensor");
  TORCH_CHECK(is_supported_float(centers.scalar_type()), fn, ": centers must be a floating-point tensor, got ",
              centers.scalar_type());
  TORCH_CHECK(centers.dim() == 2, fn, ": centers must have shape [num_classes, feature_dim], got ",
              shape_str(centers));
  TORCH_CHECK(centers.size(0) >= 1, fn, ": num_classes must be >= 1, got centers of shape ", shape_str(centers));
  TORCH_CHECK(centers.size(1) >= 1, fn, ": feature_dim must be >= 1, got centers of shape ", shape_str(centers));
  TORCH_CHECK(features.size(1) == centers.size(1), fn, ": features have feature_dim ", features.size(1),
              " but centers have feature_dim ", centers.size(1), " (features ", shape_str(features), ", centers ",
              shape_str(centers), ")");
  const auto compute = compute_dtype(features.scalar_type());
  TORCH_CHECK(centers.scalar_type() == compute, fn, ": centers must be ", compute, " for ",
              features.scalar_type(), " features (float16/bfloat16 features use float32 centers), got ",
              centers.scalar_type());
  TORCH_CHECK(centers.device() == features.device(), fn, ": centers is on ", centers.device(),
              " but features is on ", features.device());
  TORCH_CHECK(labels.defined(), fn, ": labels is an undefined tensor");
  TORCH_CHECK(labels.scalar_type() == torch::kLong, fn, ": labels must hold int64 class indices, got ",
              labels.scalar_type());
  TORCH_CHECK(labels.dim() == 1, fn, ": labels must have shape [N], got ", shape_str(labels));
  TORCH_CHECK(labels.size(0) == features.size(0), fn, ": labels has batch size ", labels.size(0),
              " but features has batch size ", features.size(0), " (labels ", shape_str(labels), ", features ",
              shape_str(features), ")");
  TORCH_CHECK(labels.device() == features.device(), fn, ": labels is on ", labels.device(),
              " but features is on ", features.device());
  check_range(fn, "alpha", alpha, 0.0, 1.0);
  TORCH_CHECK(!(update && centers.requires_grad()), fn,
              ": centers requires grad (learnable centers) and update_centers is true; learnable centers "
              "take their gradient instead: set update_centers(false)");
}

}  // namespace detail
}  // namespace torchloss
