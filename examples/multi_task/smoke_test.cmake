# Runs the multi-task trainer and checks what it leaves behind.
#   cmake -DCHECK=training|missing_data -DEXAMPLE=<exe> -DDATA_DIR=<dir> -DOUTPUT_DIR=<dir> -P smoke_test.cmake
# training:     1 epoch of both weightings on 600/300 images must write, per run, metrics.csv
#               (1 row) and the checkpoint (with the loss's log-variances), then summary.csv
#               (2 rows) and summary.md.
# missing_data: a missing data directory must exit non-zero with a one-line error naming the file.
include(${CMAKE_CURRENT_LIST_DIR}/../common/smoke_checks.cmake)
smoke_begin(multi_task training)

smoke_run("${EXAMPLE}" --data-dir "${DATA_DIR}" --output-dir "${OUTPUT_DIR}" --limit 600 --test-limit 300
          --epochs 1 --no-progress --threads 1)

foreach(run fixed learned)
  smoke_check_csv("${OUTPUT_DIR}/${run}/metrics.csv"
                  HEADER "epoch,train_loss,class_accuracy,group_accuracy,group_from_class_accuracy,class_weight,group_weight,epoch_seconds"
                  ROWS 1)
  smoke_check_fractions("${OUTPUT_DIR}/${run}/metrics.csv" class_accuracy group_accuracy group_from_class_accuracy)
  smoke_check_files("${OUTPUT_DIR}/${run}" checkpoint/model.pt checkpoint/optimizer.pt checkpoint/multi_task_loss.pt)
endforeach()
smoke_check_csv("${OUTPUT_DIR}/summary.csv"
                HEADER "run,class_accuracy,group_accuracy,group_from_class_accuracy,class_weight,group_weight,train_seconds"
                ROWS 2 TEXT_COLUMNS run)
smoke_check_contains("${OUTPUT_DIR}/summary.md" "\\| fixed \\(1, 1\\) \\| [0-9.]+ \\|.*\\| learned \\(uncertainty\\) \\| [0-9.]+ \\|")
