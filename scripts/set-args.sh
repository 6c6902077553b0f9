# set-args.sh — the command line that scripts/fetch-data.sh and
# bench/run-engine-bench.sh share: one option that takes a directory, -h,
# and names of data sets. Sourced, not run.
#
# parse_set_args NAME FLAG "KNOWN SETS" ARGS...
#   Sets `sets` (the set names given, in order) and `opt_value` (FLAG's
#   value; left as the caller set it when FLAG is absent). Calls the
#   caller's `usage` for -h (exit 0) and for bad arguments (one line on
#   stderr first, exit 2).
parse_set_args() {
    local name=$1 flag=$2 known=$3
    shift 3
    sets=()
    while [ $# -gt 0 ]; do
        case "$1" in
        "$flag")
            [ $# -ge 2 ] || { echo "$name: $flag needs a directory" >&2; usage; exit 2; }
            opt_value="$2"
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            if [[ " $known " != *" $1 "* ]]; then
                echo "$name: unknown set or option '$1'" >&2
                usage
                exit 2
            fi
            sets+=("$1")
            shift
            ;;
        esac
    done
}
