# Runs the long-tail trainer and checks what it leaves behind.
#   cmake -DCHECK=training|all_losses|missing_data -DEXAMPLE=<exe> -DDATA_DIR=<dir> -DOUTPUT_DIR=<dir> -P smoke_test.cmake
# training:     2 losses (cross entropy, LDAM-DRW) x 1 seed x 1 epoch on a small subset, then a
#               --resume run that adds a second seed; runs.csv, metrics.csv, per_class.csv and
#               summary.csv must be well formed, results.md must hold the table with both
#               seeds, long_tail.png must exist.
# all_losses:   every loss of the comparison, 1 seed, 1 epoch, on a smaller subset: one row each.
# fused_head:   three cross-entropy losses x 1 seed x 2 epochs at one thread, with the linear head
#               and with --fused-head (LinearCrossEntropyLoss): the same seed must give the same
#               training curve (train loss and test accuracies per epoch within 1e-4).
# reference_twin: every loss, 1 seed, 2 epochs on a small subset, by this trainer under
#               --recipe reference and by its PyTorch twin reference.py: the same training
#               losses epoch by epoch and the side-by-side table (smoke_check_twin).
# missing_data: a missing data directory must exit non-zero with a one-line error naming the file.
include(${CMAKE_CURRENT_LIST_DIR}/../common/smoke_checks.cmake)
smoke_begin(long_tail training all_losses fused_head reference_twin)

if(CHECK STREQUAL "reference_twin")
  set(twin_args --data-dir "${DATA_DIR}" --limit 6000 --test-limit 1000 --epochs 2 --seeds 1 --no-progress
                --threads 1)
  smoke_run("${EXAMPLE}" --recipe reference ${twin_args} --no-plot --output-dir "${OUTPUT_DIR}/torchloss")
  smoke_check_twin("${CMAKE_CURRENT_LIST_DIR}" "\\| Seesaw [^\n]* \\| 1 \\| " ${twin_args})
  return()
endif()

if(CHECK STREQUAL "fused_head")
  set(fused_args --data-dir "${DATA_DIR}" --limit 1200 --test-limit 300 --epochs 2 --seeds 3
                 --losses ce,ce_effective,logit_adjusted --no-progress --threads 1 --no-plot)
  smoke_run("${EXAMPLE}" ${fused_args} --output-dir "${OUTPUT_DIR}/linear")
  smoke_run("${EXAMPLE}" ${fused_args} --output-dir "${OUTPUT_DIR}/fused" --fused-head)
  # A plain decimal number (as metrics.csv writes them) in millionths: integer math only.
  function(decimal_in_millionths text out_var)
    if(NOT text MATCHES "^([0-9]+)(\\.([0-9]*))?$")
      message(FATAL_ERROR "metrics.csv: '${text}' is not a plain decimal number")
    endif()
    set(integer "${CMAKE_MATCH_1}")
    string(SUBSTRING "${CMAKE_MATCH_3}000000" 0 6 fraction)
    math(EXPR value "${integer} * 1000000 + 1${fraction} - 1000000")  # the leading 1 keeps zeros
    set(${out_var} ${value} PARENT_SCOPE)
  endfunction()
  file(STRINGS "${OUTPUT_DIR}/linear/metrics.csv" linear_rows)
  file(STRINGS "${OUTPUT_DIR}/fused/metrics.csv" fused_rows)
  list(LENGTH linear_rows row_count)
  list(LENGTH fused_rows fused_row_count)
  if(NOT row_count EQUAL 7 OR NOT fused_row_count EQUAL 7)
    message(FATAL_ERROR "metrics.csv: expected a header and 6 rows, got ${row_count} and ${fused_row_count} lines")
  endif()
  math(EXPR last "${row_count} - 1")
  foreach(index RANGE 1 ${last})
    list(GET linear_rows ${index} linear_row)
    list(GET fused_rows ${index} fused_row)
    string(REPLACE "," ";" linear_fields "${linear_row}")
    string(REPLACE "," ";" fused_fields "${fused_row}")
    foreach(column RANGE 0 6)  # loss, seed, epoch, train_loss, test/balanced/rare3 accuracy
      list(GET linear_fields ${column} expected)
      list(GET fused_fields ${column} actual)
      if(column LESS 3)
        set(close "${expected}" STREQUAL "${actual}")
      else()
        decimal_in_millionths("${expected}" expected_value)
        decimal_in_millionths("${actual}" actual_value)
        math(EXPR difference "${expected_value} - ${actual_value}")
        set(close ${difference} GREATER_EQUAL -100 AND ${difference} LESS_EQUAL 100)
      endif()
      if(NOT (${close}))
        message(FATAL_ERROR "--fused-head changed the training curve: '${fused_row}' vs '${linear_row}'")
      endif()
    endforeach()
  endforeach()
  return()
endif()

if(CHECK STREQUAL "all_losses")
  smoke_run("${EXAMPLE}" --data-dir "${DATA_DIR}" --output-dir "${OUTPUT_DIR}" --limit 600 --test-limit 200
            --epochs 1 --seeds 7 --no-progress --threads 1 --no-plot)
  smoke_check_csv("${OUTPUT_DIR}/runs.csv"
                  HEADER "loss,label,seed,balanced_accuracy,rare3_accuracy,accuracy,train_seconds"
                  ROWS 12 TEXT_COLUMNS loss label)
  smoke_check_fractions("${OUTPUT_DIR}/runs.csv" balanced_accuracy rare3_accuracy accuracy)
  foreach(loss ce ce_inverse ce_effective focal weighted_focal sigmoid_focal ghmc ldam_drw logit_adjusted seesaw
              logit_adjusted_drw logit_adjusted_cosine)
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
