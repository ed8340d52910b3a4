# Runs the long-tail trainer and checks what it leaves behind.
#   cmake -DCHECK=training|all_losses|missing_data -DEXAMPLE=<exe> -DDATA_DIR=<dir> -DOUTPUT_DIR=<dir> -P smoke_test.cmake
# training:     2 losses (cross entropy, LDAM-DRW) x 1 seed x 1 epoch on a small subset, then a
#               --resume run that adds a second seed; runs.csv, metrics.csv, per_class.csv and
#               summary.csv must be well formed, results.md must hold the table with both
#               seeds, long_tail.png must exist.
# all_losses:   every loss of the comparison, 1 seed, 1 epoch, on a smaller subset: one row each.
# missing_data: a missing data directory must exit non-zero with a one-line error naming the file.
include(${CMAKE_CURRENT_LIST_DIR}/../common/smoke_checks.cmake)
smoke_begin(long_tail training all_losses)

if(CHECK STREQUAL "all_losses")
  smoke_run("${EXAMPLE}" --data-dir "${DATA_DIR}" --output-dir "${OUTPUT_DIR}" --limit 600 --test-limit 200
            --epochs 1 --seeds 7 --no-progress --threads 1 --no-plot)
  smoke_check_csv("${OUTPUT_DIR}/runs.csv"
                  HEADER "loss,label,seed,balanced_accuracy,rare3_accuracy,accuracy,train_seconds"
                  ROWS 10 TEXT_COLUMNS loss label)
  smoke_check_fractions("${OUTPUT_DIR}/runs.csv" balanced_accuracy rare3_accuracy accuracy)
  foreach(loss ce ce_inverse ce_effective focal weighted_focal sigmoid_focal ghmc ldam_drw logit_adjusted seesaw)
    smoke_check_contains("${OUTPUT_DIR}/runs.csv" "\n${loss},[^\n]*,7,")
  endforeach()
  return()
endif()

set(common_args --data-dir "${DATA_DIR}" --output-dir "${OUTPUT_DIR}" --limit 1200 --test-limit 300 --epochs 1
                --no-progress --threads 1)
smoke_run("${EXAMPLE}" ${common_args} --losses ce,ldam_drw --seeds 1)
smoke_run("${EXAMPLE}" ${common_args} --losses ce,ldam_drw --seeds 1,2 --resume)

smoke_check_csv("${OUTPUT_DIR}/runs.csv"
                HEADER "loss,label,seed,balanced_accuracy,rare3_accuracy,accuracy,train_seconds"
                ROWS 4 TEXT_COLUMNS loss label)
smoke_check_fractions("${OUTPUT_DIR}/runs.csv" balanced_accuracy rare3_accuracy accuracy)
smoke_check_csv("${OUTPUT_DIR}/metrics.csv"
                HEADER "loss,seed,epoch,train_loss,test_accuracy,balanced_accuracy,rare3_accuracy,epoch_seconds"
                ROWS 4 TEXT_COLUMNS loss)
smoke_check_csv("${OUTPUT_DIR}/per_class.csv"
                HEADER "loss,seed,class_0,class_1,class_2,class_3,class_4,class_5,class_6,class_7,class_8,class_9"
                ROWS 4 TEXT_COLUMNS loss)
smoke_check_csv("${OUTPUT_DIR}/summary.csv"
                HEADER "loss,label,seeds,balanced_accuracy_mean,balanced_accuracy_std,rare3_accuracy_mean,rare3_accuracy_std,train_seconds_mean,train_seconds_std"
                ROWS 2 TEXT_COLUMNS loss label)
smoke_check_contains("${OUTPUT_DIR}/results.md"
                     "\\| Cross entropy \\| 2 \\| [0-9.]+ ± [0-9.]+ \\|.*\\| LDAM-DRW \\(cosine head\\) \\| 2 \\| [0-9.]+ ± [0-9.]+ \\|")
smoke_check_png("${OUTPUT_DIR}/long_tail.png")
