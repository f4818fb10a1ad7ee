# The warm-session shell (bash): each cell is a file sourced into this one shell, so its working folder,
# variables and functions carry over. Started by the runner as `bash --noprofile --norc -c <this text>`;
# WB_IN names an inherited pipe carrying one cell file path per line, WB_OUT one for {"status": N} replies.
trap 'echo "interrupted" >&2' INT
while IFS= read -r wb_cell <&"$WB_IN"; do
  # Jobs the runner killed after the previous cell (its note counts them) are news of that cell, not this one.
  jobs >/dev/null 2>&1
  . "$wb_cell"
  wb_status=$?
  rm -f "$wb_cell"
  printf '{"status": %d}\n' "$wb_status" >&"$WB_OUT"
done
