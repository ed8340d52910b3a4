# Runs the center-loss trainer and checks what it leaves behind.
#   cmake -DCHECK=training|missing_data -DEXAMPLE=<exe> -DDATA_DIR=<dir> -DOUTPUT_DIR=<dir> -P smoke_test.cmake
# training:     1 epoch of both runs on 600/300 images must write, per run, metrics.csv
#               (1 row) and features.csv (one row per test image) and the checkpoint; then
#               summary.csv (2 rows), summary.md and embeddings.png.
# search:       lists of λ and α with --no-baseline: one run per pair (center_l<λ>_a<α>), no ce/.
# reference_twin: both runs, seed 1, 2 epochs on a small subset, by this trainer under
#               --recipe reference and by its PyTorch twin reference.py: the same training
#               losses epoch by epoch (the same weights, batches and center updates) and the
#               side-by-side table (smoke_check_twin).
# missing_data: a missing data directory must exit non-zero with a one-line error naming the file.
include(${CMAKE_CURRENT_LIST_DIR}/../common/smoke_checks.cmake)
smoke_begin(center_loss_embedding training search reference_twin)

if(CHECK STREQUAL "reference_twin")
  set(twin_args --data-dir "${DATA_DIR}" --limit 3000 --test-limit 1000 --epochs 2 --no-progress --threads 1)
  smoke_run("${EXAMPLE}" --recipe reference --seed 1 ${twin_args} --no-plot
            --output-dir "${OUTPUT_DIR}/torchloss/seed_1")
  smoke_check_twin("${CMAKE_CURRENT_LIST_DIR}" "\\| CE \\+ 0.5 · center loss [^\n]* \\| 1 \\| " --seeds 1 ${twin_args})
  return()
endif()

if(CHECK STREQUAL "search")
  smoke_run("${EXAMPLE}" --data-dir "${DATA_DIR}" --output-dir "${OUTPUT_DIR}" --limit 600 --test-limit 300
            --epochs 1 --no-progress --threads 1 --center-lambda 0.5,1 --center-alpha 0.5 --no-baseline)
  foreach(run center_l0.5_a0.5 center_l1_a0.5)
    smoke_check_csv("${OUTPUT_DIR}/${run}/features.csv" HEADER "x,y,label" ROWS 300)
  endforeach()
  if(EXISTS "${OUTPUT_DIR}/ce")
    message(FATAL_ERROR "--no-baseline still trained the cross-entropy run")
  endif()
  smoke_check_csv("${OUTPUT_DIR}/summary.csv"
                  HEADER "run,center_lambda,center_alpha,test_accuracy,balanced_accuracy,intra_class,inter_class,intra_inter_ratio,train_seconds"
                  ROWS 2 TEXT_COLUMNS run)
  smoke_check_png("${OUTPUT_DIR}/embeddings.png")
  return()
endif()

smoke_run("${EXAMPLE}" --data-dir "${DATA_DIR}" --output-dir "${OUTPUT_DIR}" --limit 600 --test-limit 300
          --epochs 1 --no-progress --threads 1)

foreach(run ce center)
  smoke_check_csv("${OUTPUT_DIR}/${run}/metrics.csv"
                  HEADER "epoch,train_loss,test_accuracy,balanced_accuracy,intra_class,inter_class,intra_inter_ratio,epoch_seconds"
                  ROWS 1)
  smoke_check_fractions("${OUTPUT_DIR}/${run}/metrics.csv" test_accuracy balanced_accuracy)
  smoke_check_csv("${OUTPUT_DIR}/${run}/features.csv" HEADER "x,y,label" ROWS 300)
  smoke_check_files("${OUTPUT_DIR}/${run}" checkpoint/model.pt checkpoint/optimizer.pt checkpoint/center_loss.pt)
endforeach()
smoke_check_csv("${OUTPUT_DIR}/summary.csv"
                HEADER "run,center_lambda,center_alpha,test_accuracy,balanced_accuracy,intra_class,inter_class,intra_inter_ratio,train_seconds"
                ROWS 2 TEXT_COLUMNS run)
smoke_check_contains("${OUTPUT_DIR}/summary.md" "\\| cross entropy \\| [0-9.]+ \\|.*\\| cross entropy \\+ [0-9.]+ · center loss")
smoke_check_png("${OUTPUT_DIR}/embeddings.png")
