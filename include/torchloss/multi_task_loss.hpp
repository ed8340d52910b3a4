#pragma once
/// \file multi_task_loss.hpp
/// \brief MultiTaskLoss: one scalar from the losses of several heads, with fixed weights or
/// learned homoscedastic-uncertainty weights (Kendall, Gal, Cipolla, CVPR 2018).

#include <torchloss/detail/checks.hpp>
#include <torchloss/detail/module_state.hpp>

#include <vector>

namespace torchloss {

/// Options of MultiTaskLoss.
///
/// \code
/// torchloss::MultiTaskLoss combine(torchloss::MultiTaskLossOptions(2).learn_uncertainty(true));
/// auto params = model->parameters();
/// for (const auto& p : combine->parameters()) params.push_back(p);  // log_vars train too
/// torch::optim::Adam optimizer(params);
/// auto loss = combine->forward({class_loss, group_loss});
/// \endcode
struct MultiTaskLossOptions {
  /// Builds the options for `num_tasks` tasks (required, \f$\ge 1\f$).
  /* implicit */ MultiTaskLossOptions(int64_t num_tasks) : num_tasks_(num_tasks) {}
  /// Number of task losses \f$T \ge 1\f$ that forward() takes.
  TORCH_ARG(int64_t, num_tasks);
  /// Fixed task weights \f$w\f$, a floating 1-D tensor [T] of non-negative entries; undefined
  /// means all ones.
  TORCH_ARG(torch::Tensor, weights) = {};
  /// Learn one log-variance \f$s_i = \log \sigma_i^2\f$ per task (a parameter `log_vars`,
  /// zero-initialised) and weight the tasks by \f$e^{-s_i}\f$ (see MultiTaskLossImpl).
  TORCH_ARG(bool, learn_uncertainty) = false;
};

/// Combines per-task scalar losses \f$L_1, \dots, L_T\f$ into one:
/// \f[ L = \sum_i w_i L_i \f]
/// with the fixed weights \f$w\f$ (ones by default), or, with `learn_uncertainty`, Kendall et
/// al.'s uncertainty weighting over the learnable log-variances \f$s_i = \log\sigma_i^2\f$:
/// \f[ L = \sum_i w_i \left(e^{-s_i} L_i + s_i\right), \qquad
///     \frac{\partial L}{\partial s_i} = w_i \left(1 - e^{-s_i} L_i\right), \f]
/// so each \f$s_i\f$ settles where \f$e^{s_i} = L_i\f$ and a noisy task weighs less. The
/// \f$s_i\f$ are the registered parameter `log_vars` [T] (zero at the start: every weight 1),
/// trained by whichever optimizer gets this module's parameters, saved and loaded with the
/// module (`torch::save` / `torch::load`) and moved by `->to(device)`. Fixed weights
/// \f$w_i\f$ also scale the uncertainty terms: \f$w_i = 1/2\f$ gives the paper's regression form
/// \f$\frac{1}{2\sigma^2} L + \log\sigma\f$. The weights are the registered buffer `weights`.
class MultiTaskLossImpl : public torch::nn::Cloneable<MultiTaskLossImpl> {
 public:
  /// Builds the combiner from its options (checked here).
  explicit MultiTaskLossImpl(MultiTaskLossOptions options_) : options(std::move(options_)) { reset(); }

  /// Checks the options and registers `weights` (buffer) and, with `learn_uncertainty`,
  /// `log_vars` (parameter, zeros).
  void reset() override {
    const char* fn = "torchloss::MultiTaskLoss";
    const int64_t tasks = options.num_tasks();
    TORCH_CHECK(tasks >= 1, fn, ": num_tasks must be >= 1, got ", tasks);
    const auto& given = options.weights();
    if (given.defined()) {
      TORCH_CHECK(detail::is_supported_float(given.scalar_type()), fn, ": weights must be a floating-point tensor, got ",
                  given.scalar_type());
      TORCH_CHECK(given.dim() == 1 && given.size(0) == tasks, fn, ": weights must have shape [", tasks,
                  "] (one per task), got ", detail::shape_str(given));
      const auto bad = ~(given >= 0);
      TORCH_CHECK(!bad.any().item<bool>(), fn, ": weights must be non-negative, got ",
                  given.masked_select(bad)[0].item<double>(), " for task ", bad.nonzero()[0][0].item<int64_t>());
    }
    weights = register_buffer("weights", given.defined() ? given.detach().clone() : torch::ones({tasks}));
    log_vars = options.learn_uncertainty()
                   ? register_parameter("log_vars", torch::zeros({tasks}, weights.options()))
                   : torch::Tensor();
  }

  /// Loads a saved state; refuses one with learned `log_vars` when this module learns none.
  void load(torch::serialize::InputArchive& archive) override {
    detail::check_no_unregistered_tensor(archive, "torchloss::MultiTaskLoss", "log_vars", log_vars.defined(),
                                         "options.learn_uncertainty(true)");
    torch::nn::Module::load(archive);
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::MultiTaskLoss(num_tasks=" << options.num_tasks()
           << ", learn_uncertainty=" << (options.learn_uncertainty() ? "true" : "false") << ")";
  }

  /// The combined loss of `losses`, one scalar (0-dim, floating) tensor per task in task
  /// order, on the module's device; the result has the dtype of `weights`.
  torch::Tensor forward(const std::vector<torch::Tensor>& losses) {
    const char* fn = "torchloss::MultiTaskLoss";
    TORCH_CHECK(static_cast<int64_t>(losses.size()) == options.num_tasks(), fn, ": expected ",
                options.num_tasks(), " task losses (num_tasks), got ", losses.size());
    for (size_t i = 0; i < losses.size(); ++i) {
      const auto& loss = losses[i];
      TORCH_CHECK(loss.defined(), fn, ": losses[", i, "] is an undefined tensor");
      TORCH_CHECK(loss.dim() == 0, fn, ": losses[", i, "] must be a scalar (0-dim) tensor, got shape ",
                  detail::shape_str(loss));
      TORCH_CHECK(detail::is_supported_float(loss.scalar_type()), fn, ": losses[", i,
                  "] must be a floating-point tensor, got ", loss.scalar_type());
      TORCH_CHECK(loss.device() == weights.device(), fn, ": losses[", i, "] is on ", loss.device(),
                  " but the module is on ", weights.device());
    }
    const auto stacked = torch::stack(to_weights_dtype(losses));
    if (!log_vars.defined()) return (weights * stacked).sum();
    return (weights * (torch::exp(-log_vars) * stacked + log_vars)).sum();
  }

  /// The weight each task's loss gets now, without gradient: \f$w_i\f$, or \f$w_i e^{-s_i}\f$
  /// with learned uncertainty (for logging).
  torch::Tensor task_weights() const {
    torch::NoGradGuard no_grad;
    return log_vars.defined() ? weights * torch::exp(-log_vars) : weights.clone();
  }

  /// The options the module was built with.
  MultiTaskLossOptions options;
  /// Registered fixed task weights [T] (ones unless given).
  torch::Tensor weights;
  /// Registered learnable log-variances \f$s_i = \log\sigma_i^2\f$ [T] (undefined without
  /// `learn_uncertainty`).
  torch::Tensor log_vars;

 private:
  std::vector<torch::Tensor> to_weights_dtype(const std::vector<torch::Tensor>& losses) const {
    std::vector<torch::Tensor> converted;
    converted.reserve(losses.size());
    for (const auto& loss : losses) converted.push_back(loss.to(weights.scalar_type()));
    return converted;
  }
};

/// Module holder of MultiTaskLossImpl.
TORCH_MODULE(MultiTaskLoss);

}  // namespace torchloss
