# Runs the Fashion-MNIST example and checks what it leaves behind.
#   cmake -DCHECK=training|missing_data -DEXAMPLE=<exe> -DDATA_DIR=<dir> -DOUTPUT_DIR=<dir> -P smoke_test.cmake
# training:     1 epoch on 512/256 images must exit 0 and write metrics.csv (header and one
#               numeric row, accuracies in [0, 1]), the checkpoint and metrics.png.
# missing_data: a missing data directory must exit non-zero with a one-line error naming the file.
include(${CMAKE_CURRENT_LIST_DIR}/../common/smoke_checks.cmake)
smoke_begin(fashion_mnist training)

smoke_run("${EXAMPLE}" --data-dir "${DATA_DIR}" --epochs 1 --limit 512 --test-limit 256
          --no-progress --threads 2 --plot --output-dir "${OUTPUT_DIR}")
smoke_check_csv("${OUTPUT_DIR}/metrics.csv"
                HEADER "epoch,train_loss,test_loss,test_accuracy,balanced_accuracy,seconds" ROWS 1)
smoke_check_fractions("${OUTPUT_DIR}/metrics.csv" test_accuracy balanced_accuracy)
smoke_check_files("${OUTPUT_DIR}" checkpoint/model.pt checkpoint/optimizer.pt)
smoke_check_png("${OUTPUT_DIR}/metrics.png")

# --mixup: mixup_cross_entropy trains and evaluates like the plain loss.
smoke_run("${EXAMPLE}" --data-dir "${DATA_DIR}" --epochs 1 --limit 512 --test-limit 256
          --no-progress --threads 2 --mixup 0.4 --label-smoothing 0.1 --output-dir "${OUTPUT_DIR}/mixup")
smoke_check_csv("${OUTPUT_DIR}/mixup/metrics.csv"
                HEADER "epoch,train_loss,test_loss,test_accuracy,balanced_accuracy,seconds" ROWS 1)
smoke_check_fractions("${OUTPUT_DIR}/mixup/metrics.csv" test_accuracy balanced_accuracy)
