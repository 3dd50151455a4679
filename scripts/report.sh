# Shared by the test scripts, whose last line is "N passed, M failed" (what make test counts).
#
#   finish_runs
#
# Lists the entries of the `failures` array (if `failed` > 0), prints the closing line from
# `passed` and `failed`, and returns non-zero when anything failed (the script's exit status).
finish_runs() {
    if [[ $failed -gt 0 ]]; then
        printf 'failed runs:\n'
        printf '  %s\n' "${failures[@]}"
    fi
    echo "$passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

#   cargo_test_counts LOG RC
#
# For scripts that run `cargo test`.
#
# Sets `passed` and `failed` from the last "test result:" line of LOG. A cargo exit status RC
# that is not 0 while no test failed (the build failed, or a tool stopped the test binary)
# counts as one failure, and so does a run in which no test ran at all; `count_note` then
# says which.
cargo_test_counts() {
    local result
    result="$(grep -E '^test result: ' "$1" | tail -n 1)"
    passed="$(sed -nE 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1/p' <<<"$result")"
    failed="$(sed -nE 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\2/p' <<<"$result")"
    passed=${passed:-0}
    failed=${failed:-0}
    count_note=""
    if [[ $2 -ne 0 && $failed -eq 0 ]]; then
        count_note="stopped"
        failed=1
    elif [[ $passed -eq 0 && $failed -eq 0 ]]; then
        count_note="none ran"
        failed=1
    fi
}
