#pragma once
/// \file weight_buffer_module.hpp
/// \brief The module shape of the losses whose only state is an optional `weight` tensor.

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torchloss/detail/module_state.hpp>

#include <ostream>

namespace torchloss {
namespace detail {

/// What WeightedCrossEntropyLoss, WeightedBinaryCrossEntropyLoss and MultiLabelSoftMarginLoss
/// share (the pattern of LibTorch's ConvNdImpl): the options' `weight` as a registered buffer,
/// so `->to()`, `clone()` and `torch::save` carry it, and a forward that calls the functional
/// form with it. `Derived` provides `kName`, `static torch::Tensor loss(input, target,
/// options)` and `void print_options(std::ostream&) const` (the options before `reduction`).
template <class Derived, class Options>
class WeightBufferLossImpl : public torch::nn::Cloneable<Derived> {
 public:
  /// Builds the loss from its options.
  explicit WeightBufferLossImpl(Options options_) : options(std::move(options_)) { reset(); }

  /// Registers the `weight` buffer (when given).
  void reset() override {
    weight = options.weight().defined() ? this->register_buffer("weight", options.weight().clone()) : torch::Tensor();
  }

  /// Loads a saved state; refuses one with a `weight` when this module has none.
  void load(torch::serialize::InputArchive& archive) override {
    check_no_unregistered_tensor(archive, std::string("torchloss::") + Derived::kName, "weight", weight.defined(),
                                 "options.weight(...)");
    torch::nn::Module::load(archive);
  }

  /// Prints the module and its options.
  void pretty_print(std::ostream& stream) const override {
    stream << "torchloss::" << Derived::kName << "(";
    static_cast<const Derived&>(*this).print_options(stream);
    stream << "reduction=" << torch::enumtype::get_enum_name(options.reduction()) << ")";
  }

  /// The loss of `input` logits against `target`, weighted by the registered buffer.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& target) {
    return Derived::loss(input, target, Options(options).weight(weight));
  }

  /// The options the module was built with.
  Options options;
  /// The registered weights (undefined when none).
  torch::Tensor weight;
};

}  // namespace detail
}  // namespace torchloss
