#pragma once
/// \file normed_linear.hpp
/// \brief NormedLinear: a bias-free linear layer on unit vectors, whose outputs are cosine
/// logits in [−1, 1] (the classifier head of LDAM-DRW).

#include <torchloss/detail/checks.hpp>

namespace torchloss {

/// Options of NormedLinear.
///
/// \code
/// torchloss::NormedLinear head(torchloss::NormedLinearOptions(512, 10));
/// \endcode
struct NormedLinearOptions {
  /// Builds the options from the feature and output sizes.
  NormedLinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  /// Size \f$D\f$ of each input feature vector (\f$\ge 1\f$).
  TORCH_ARG(int64_t, in_features);
  /// Number of outputs \f$C\f$, one weight vector each (\f$\ge 1\f$).
  TORCH_ARG(int64_t, out_features);
  /// \f$\epsilon\f$ of the normalisation: vectors are divided by \f$\max(\lVert v \rVert, \epsilon)\f$.
  TORCH_ARG(double, eps) = 1e-12;
};

/// Cosine-similarity linear layer of the LDAM reference implementation (Cao et al., 2019):
/// \f[ \mathrm{out}_{i,c} = \frac{x_i \cdot W_c}{\max(\lVert x_i \rVert, \epsilon)\,
///     \max(\lVert W_c \rVert, \epsilon)}, \f]
/// for inputs [N, D] (or [..., D]) and the registered parameter `weight` [C, D] (LibTorch's
/// Linear layout; the reference stores its transpose). `reset()` initialises every row
/// uniform in [−1, 1], then rescales it to unit norm, as the reference's
/// `uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)`. Gradients reach both inputs and weights
/// through LibTorch's autograd.
class NormedLinearImpl : public torch::nn::Cloneable<NormedLinearImpl> {
 public:
  /// Builds the layer for `in_features` inputs and `out_features` outputs.
  NormedLinearImpl(int64_t in_features, int64_t out_features)
      : NormedLinearImpl(NormedLinearOptions(in_features, out_features)) {}
  /// Builds the layer from its options.
  explicit NormedLinearImpl(NormedLinearOptions options_) : options(std::move(options_)) { reset(); }

  /// Checks the sizes, registers `weight` [out_features, in_features] and initialises it.
  void reset() override {
    const char* fn = "torchloss::NormedLinear";
    TORCH_CHECK(options.in_features() >= 1, fn, ": in_features must be >= 1, got ", options.in_features());
    TORCH_CHECK(options.out_features() >= 1, fn, ": out_features must be >= 1, got ", options.out_features());
    TORCH_CHECK(options.eps() > 0, fn, ": eps must be > 0, got ", options.eps());
    weight = register_parameter("weight", torch::empty({options.out_features(), options.in_features()}));
    reset_parameters();
  }

  /// Draws every weight row uniform in [−1, 1] and scales it to unit norm.
  void reset_parameters() {
    torch::NoGradGuard no_grad;
    weight.uniform_(-1, 1).renorm_(2, 0, 1e-5).mul_(1e5);
  }

  /// Prints the module and its sizes.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::NormedLinear(in_features=" << options.in_features()
           << ", out_features=" << options.out_features() << ")";
  }

  /// Cosine logits [..., out_features] of `input` [..., in_features].
  torch::Tensor forward(const torch::Tensor& input) {
    const char* fn = "torchloss::NormedLinear";
    detail::check_logits(fn, input);
    TORCH_CHECK(input.dim() >= 1 && input.size(-1) == options.in_features(), fn, ": input must have shape [..., ",
                options.in_features(), "] (in_features last), got ", detail::shape_str(input));
    namespace F = torch::nn::functional;
    const auto unit_input = F::normalize(input, F::NormalizeFuncOptions().dim(-1).eps(options.eps()));
    const auto unit_weight = F::normalize(weight, F::NormalizeFuncOptions().dim(1).eps(options.eps()));
    return torch::matmul(unit_input, unit_weight.t());
  }

  /// The options the layer was built with.
  NormedLinearOptions options;
  /// Registered weight [out_features, in_features].
  torch::Tensor weight;
};

/// Module holder of NormedLinearImpl.
TORCH_MODULE(NormedLinear);

}  // namespace torchloss
