# The warm-session R interpreter: each cell is a file sourced into the global environment, so its
# objects carry over. Started by the runner as `R --no-save --no-restore --quiet --slave -e <this text>`;
# WB_IN names an inherited pipe carrying one cell file path per line, WB_OUT one for {"status": N} replies.
wb_in <- file(paste0("/proc/self/fd/", Sys.getenv("WB_IN")), "r")
wb_out <- file(paste0("/proc/self/fd/", Sys.getenv("WB_OUT")), "w")
repeat {
  wb_cell <- readLines(wb_in, n = 1)
  if (length(wb_cell) == 0) break
  wb_status <- tryCatch({
    source(wb_cell, local = globalenv(), print.eval = TRUE, echo = FALSE)
    0L
  }, interrupt = function(e) { message("interrupted"); 130L },
     error = function(e) { message("Error: ", conditionMessage(e)); 1L })
  unlink(wb_cell)
  flush(stdout()); flush(stderr())
  cat(sprintf('{"status": %d}\n', wb_status), file = wb_out)
  flush(wb_out)
}
