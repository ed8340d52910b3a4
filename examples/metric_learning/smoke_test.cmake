# Runs the metric-learning trainer and checks what it leaves behind.
#   cmake -DCHECK=training|missing_data -DEXAMPLE=<exe> -DDATA_DIR=<dir> -DOUTPUT_DIR=<dir> -P smoke_test.cmake
# training:     1 epoch of every loss on 600/300 images, one seed, must write metrics.csv
#               (6 rows), runs.csv (6 rows), features_<loss>.csv (300 rows each), summary.csv,
#               results.md and metric_learning.png.
# triplet_soft_margin: --losses triplet with and without --triplet-soft-margin, the same seed:
#               the table says which, and the training losses differ (softplus vs hinge).
# missing_data: a missing data directory must exit non-zero with a one-line error naming the file.
include(${CMAKE_CURRENT_LIST_DIR}/../common/smoke_checks.cmake)
smoke_begin(metric_learning training triplet_soft_margin)
set(metrics_header "loss,seed,epoch,train_loss,accuracy,recall_at_1,map_at_r,epoch_seconds")
set(runs_header "loss,seed,accuracy,recall_at_1,map_at_r,train_seconds")

if(CHECK STREQUAL "triplet_soft_margin")
  set(losses "")
  foreach(variant hinge soft)
    set(flag "")
    if(variant STREQUAL "soft")
      set(flag --triplet-soft-margin)
    endif()
    smoke_run("${EXAMPLE}" --data-dir "${DATA_DIR}" --output-dir "${OUTPUT_DIR}/${variant}" --limit 300
              --test-limit 200 --epochs 1 --seeds 1 --losses triplet --no-progress --no-plot --threads 1 ${flag})
    smoke_check_csv("${OUTPUT_DIR}/${variant}/runs.csv" HEADER "${runs_header}" ROWS 1 TEXT_COLUMNS loss)
    smoke_check_csv("${OUTPUT_DIR}/${variant}/metrics.csv" HEADER "${metrics_header}" ROWS 1 TEXT_COLUMNS loss)
    file(STRINGS "${OUTPUT_DIR}/${variant}/metrics.csv" rows)
    list(GET rows 1 row)
    smoke_split_csv_row("${row}" fields)
    list(GET fields 3 loss)  # train_loss
    list(APPEND losses "${loss}")
  endforeach()
  smoke_check_contains("${OUTPUT_DIR}/hinge/results.md" "triplet margin 0.3")
  smoke_check_contains("${OUTPUT_DIR}/soft/results.md" "triplet soft margin")
  list(GET losses 0 hinge_loss)
  list(GET losses 1 soft_loss)
  if(hinge_loss STREQUAL soft_loss)
    message(FATAL_ERROR "--triplet-soft-margin did not change the training loss (${hinge_loss} both times)")
  endif()
  return()
endif()

smoke_run("${EXAMPLE}" --data-dir "${DATA_DIR}" --output-dir "${OUTPUT_DIR}" --limit 600 --test-limit 300
          --epochs 1 --seeds 1 --no-progress --threads 1)

smoke_check_csv("${OUTPUT_DIR}/metrics.csv" HEADER "${metrics_header}" ROWS 6 TEXT_COLUMNS loss)
smoke_check_fractions("${OUTPUT_DIR}/metrics.csv" accuracy recall_at_1 map_at_r)
smoke_check_csv("${OUTPUT_DIR}/runs.csv" HEADER "${runs_header}" ROWS 6 TEXT_COLUMNS loss)
foreach(loss ce center arcface cosface supcon triplet)
  smoke_check_csv("${OUTPUT_DIR}/features_${loss}.csv" HEADER "x,y,label" ROWS 300)
endforeach()
smoke_check_csv("${OUTPUT_DIR}/summary.csv"
                HEADER "loss,label,seeds,accuracy_mean,accuracy_std,recall_at_1_mean,recall_at_1_std,map_at_r_mean,map_at_r_std,train_seconds_mean"
                ROWS 6 TEXT_COLUMNS loss label)
smoke_check_contains("${OUTPUT_DIR}/results.md" "\\| ArcFace \\(angular margin\\) \\| 1 \\| [0-9.]+ \\|")
smoke_check_png("${OUTPUT_DIR}/metric_learning.png")
