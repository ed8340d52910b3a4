#pragma once
/// \file torchloss.hpp
/// \brief Umbrella header: every torchloss loss, module and helper.

#include <torchloss/version.hpp>

#include <torchloss/asymmetric_loss.hpp>
#include <torchloss/batch_hard_triplet_loss.hpp>
#include <torchloss/center_loss.hpp>
#include <torchloss/class_weights.hpp>
#include <torchloss/combined_margin_loss.hpp>
#include <torchloss/distillation_loss.hpp>
#include <torchloss/focal_loss.hpp>
#include <torchloss/ghm_loss.hpp>
#include <torchloss/ldam_loss.hpp>
#include <torchloss/linear_cross_entropy.hpp>
#include <torchloss/logit_adjusted_cross_entropy.hpp>
#include <torchloss/multi_task_loss.hpp>
#include <torchloss/multilabel_soft_margin_loss.hpp>
#include <torchloss/normed_linear.hpp>
#include <torchloss/poly_loss.hpp>
#include <torchloss/seesaw_loss.hpp>
#include <torchloss/sigmoid_focal_loss.hpp>
#include <torchloss/soft_target_cross_entropy.hpp>
#include <torchloss/supervised_contrastive_loss.hpp>
#include <torchloss/weighted_binary_cross_entropy.hpp>
#include <torchloss/weighted_cross_entropy.hpp>
