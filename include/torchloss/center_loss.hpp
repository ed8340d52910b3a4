#pragma once
/// \file center_loss.hpp
/// \brief Center loss (Wen, Zhang, Li and Qiao, ECCV 2016): options, functional form and the
/// stateful module CenterLoss, whose class centers follow the paper's α-smoothed update.
///
/// The module is used beside a classification loss, as the paper trains:
/// \code
/// torchloss::CenterLoss center(torchloss::CenterLossOptions(num_classes, feature_dim).alpha(0.5));
/// torch::nn::CrossEntropyLoss cross_entropy;
/// center->to(device);                       // the centers buffer moves with the module
/// auto features = backbone->forward(images); // [N, feature_dim]
/// auto logits = classifier->forward(features);
/// auto loss = cross_entropy(logits, labels) + lambda * center(features, labels);
/// optimizer.zero_grad();
/// loss.backward();                          // also moves the centers of this batch's classes
/// optimizer.step();                         // the optimizer does not own the centers
/// \endcode
///
/// See \ref center_loss for the formulas, the choice of λ and α, and the distributed mode.

#include <torchloss/detail/center_loss_impl.hpp>
#include <torchloss/distributed.hpp>

#include <ostream>

namespace torchloss {

/// Options of CenterLoss.
///
/// \code
/// torchloss::CenterLoss loss(torchloss::CenterLossOptions(/*num_classes=*/10, /*feature_dim=*/2).alpha(0.5));
/// \endcode
struct CenterLossOptions {
  /// Builds the options of a loss over `num_classes` centers of dimension `feature_dim`.
  CenterLossOptions(int64_t num_classes, int64_t feature_dim)
      : num_classes_(num_classes), feature_dim_(feature_dim) {}
  /// Number of classes \f$C \ge 1\f$ (rows of the centers).
  TORCH_ARG(int64_t, num_classes);
  /// Feature dimension \f$D \ge 1\f$ (columns of the centers).
  TORCH_ARG(int64_t, feature_dim);
  /// Update rate \f$\alpha \in [0, 1]\f$ of the centers:
  /// \f$c_j \leftarrow c_j - \alpha\,\Delta c_j\f$ (0 freezes them).
  TORCH_ARG(double, alpha) = 0.5;
  /// torch::kNone (per-sample losses), torch::kMean (sum / N) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  /// When true, the centers are a parameter that receives the gradient
  /// \f$-\sum_{i: y_i = j} (x_i - c_j)\f$ (÷N for kMean) and is moved by the user's
  /// optimizer; when false (the paper), a buffer moved by the α rule in backward.
  TORCH_ARG(bool, learnable_centers) = false;
  /// All-reduce over the ranks of a process group (see all_reduce_with()); when set, the
  /// per-class sums and counts of the update are summed over the ranks first, so every rank
  /// keeps identical centers. Empty (the default): one process.
  TORCH_ARG(AllReduceFn, process_group) = {};
};

namespace functional {

/// Options of functional::center_loss.
struct CenterLossFuncOptions {
  /// Update rate \f$\alpha \in [0, 1]\f$.
  TORCH_ARG(double, alpha) = 0.5;
  /// torch::kNone, torch::kMean (sum / N) or torch::kSum.
  TORCH_ARG(reduction_t, reduction) = torch::kMean;
  /// Whether backward moves `centers` in place by the α rule. Set it to false for centers
  /// that require grad (learnable centers), in evaluation, and for pure loss values.
  TORCH_ARG(bool, update_centers) = true;
  /// All-reduce of the update's per-class sums and counts (see CenterLossOptions::process_group).
  TORCH_ARG(AllReduceFn, process_group) = {};
};

/// Center loss of features \f$x\f$ [N, D] with int64 labels \f$y\f$ [N] against the class
/// centers \f$c\f$ [C, D]:
/// \f[ \ell_i = \tfrac12 \lVert x_i - c_{y_i} \rVert^2, \qquad
///     \frac{\partial \ell_i}{\partial x_i} = x_i - c_{y_i}, \f]
/// returned per sample (kNone), summed (kSum) or divided by N (kMean; 0 for an empty batch).
/// Each sample's center is gathered: O(N·D) time and memory, independent of C.
///
/// Backward returns the feature gradient times the incoming gradient, so
/// `ce + lambda * center_loss(...)` scales it by λ. When `update_centers` is true it also
/// moves, in place, the centers of the classes present in the batch by the authors' rule
/// \f[ \Delta c_j = \frac{\sum_{i: y_i = j} (c_j - x_i)}{1 + n_j}, \qquad
///     c_j \leftarrow c_j - \alpha\, \Delta c_j, \f]
/// with \f$n_j\f$ the number of samples of class \f$j\f$, computed from the centers as they were
/// at forward time and not scaled by λ (classes absent from the batch do not move). Each
/// backward through the result applies the update once; a result that is never
/// back-propagated moves nothing. When `centers` requires grad, it receives
/// \f$\partial L / \partial c_j = -g \sum_{i: y_i = j} (x_i - c_j)\f$ (÷N for kMean) instead.
///
/// float16/bfloat16 features are computed in float32 with float32 centers; the loss and the
/// feature gradient have the features' dtype. CPU tensors run fused loops, CUDA tensors the
/// kernels of the CMake target `torchloss::cuda` when it is linked (deterministic ones
/// under `at::globalContext().deterministicAlgorithms()`), and ATen ops otherwise.
///
/// Errors (c10::Error, "torchloss::center_loss: ..."): features not a floating-point [N, D]
/// tensor, centers not [C, D] with C, D ≥ 1 and D equal to the features', centers not of
/// the compute dtype, labels not int64 [N] with the features' N, a label outside [0, C),
/// tensors on different devices, alpha outside [0, 1], update_centers with centers that
/// require grad.
inline torch::Tensor center_loss(const torch::Tensor& features, const torch::Tensor& labels,
                                 const torch::Tensor& centers, const CenterLossFuncOptions& options = {}) {
  detail::check_center_loss_args(features, labels, centers, options.alpha(), options.update_centers());
  detail::CenterLossConfig cfg{options.alpha(), detail::reduction_code(options.reduction()),
                               options.update_centers(), options.process_group()};
  return detail::CenterLossFunction::apply(features, labels, centers, std::move(cfg))[0];
}

}  // namespace functional

/// Module form of functional::center_loss, holding the centers \f$c\f$ [C, D].
///
/// `centers` is zero-initialised and registered in reset(): a buffer when
/// `learnable_centers` is false (moved by the α rule in backward, in training mode only),
/// a parameter when it is true (give it to an optimizer). Either way `->to(device)`,
/// `clone()`, `torch::save`/`torch::load` and `state_dict` carry it, and a resumed run
/// continues identically. In `eval()` mode the loss and the feature gradient are the same,
/// and the centers do not move.
///
/// Thread safety: one module may be used from several threads at once (Hogwild-style); each
/// backward's update of the centers is a locked read-modify-write, so none is lost. Each
/// update uses the centers its forward saw, and a forward may read centers that another
/// thread is updating.
class CenterLossImpl : public torch::nn::Cloneable<CenterLossImpl> {
 public:
  /// Builds the loss from its options (validated here, messages "torchloss::CenterLoss: ...").
  explicit CenterLossImpl(CenterLossOptions options_) : options(std::move(options_)) { reset(); }
  /// Builds the loss over `num_classes` centers of dimension `feature_dim`, other options at
  /// their defaults.
  CenterLossImpl(int64_t num_classes, int64_t feature_dim)
      : CenterLossImpl(CenterLossOptions(num_classes, feature_dim)) {}

  /// Validates the options and registers zero centers [C, D] (float32) as the buffer or
  /// parameter `centers`.
  void reset() override {
    const char* fn = detail::kCenterLossModule;
    TORCH_CHECK(options.num_classes() >= 1, fn, ": num_classes must be >= 1, got ", options.num_classes());
    TORCH_CHECK(options.feature_dim() >= 1, fn, ": feature_dim must be >= 1, got ", options.feature_dim());
    detail::check_range(fn, "alpha", options.alpha(), 0.0, 1.0);
    auto zeros = torch::zeros({options.num_classes(), options.feature_dim()});
    centers = options.learnable_centers() ? register_parameter("centers", std::move(zeros))
                                          : register_buffer("centers", std::move(zeros));
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::CenterLoss(num_classes=" << options.num_classes()
           << ", feature_dim=" << options.feature_dim() << ", alpha=" << options.alpha()
           << ", reduction=" << torch::enumtype::get_enum_name(options.reduction())
           << ", learnable_centers=" << (options.learnable_centers() ? "true" : "false")
           << ", distributed=" << (options.process_group() ? "true" : "false") << ")";
  }

  /// The loss of `features` [N, D] for `labels` [N]; in training mode with non-learnable
  /// centers, its backward also moves the centers of the classes in `labels`.
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& labels) {
    return functional::center_loss(features, labels, centers,
                                   functional::CenterLossFuncOptions()
                                       .alpha(options.alpha())
                                       .reduction(options.reduction())
                                       .update_centers(is_training() && !options.learnable_centers())
                                       .process_group(options.process_group()));
  }

  /// The options the module was built with.
  CenterLossOptions options;
  /// Registered class centers [C, D]: a buffer, or a parameter with `learnable_centers`.
  torch::Tensor centers;
};

/// Module holder of CenterLossImpl (`std::shared_ptr` semantics, like torch::nn::CrossEntropyLoss).
TORCH_MODULE(CenterLoss);

}  // namespace torchloss
