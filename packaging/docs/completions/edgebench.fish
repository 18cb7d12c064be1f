# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_edgebench_global_optspecs
    string join \n h/help V/version
end

function __fish_edgebench_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_edgebench_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_edgebench_using_subcommand
    set -l cmd (__fish_edgebench_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c edgebench -n "__fish_edgebench_needs_command" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_needs_command" -s V -l version -d 'Print version'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "run" -d 'Run a benchmark sweep: print a table and write JSON Lines results'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "models" -d 'List the model zoo: files present, sizes, sha256 check'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "check-config" -d 'Validate the configuration and print the merged result'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "generate-config" -d 'Print the documented default configuration'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "info" -d 'Runtimes found, their versions and usable providers / delegates'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "daemon" -d 'Run as a service: sweeps on boot, on a timetable or on MQTT commands; results, progress and telemetry published over MQTT (systemd `Type=notify`)'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "report" -d 'Compare result files across boards, runtimes and dates: latency, gains against a baseline platform, knees; as a table, Markdown, CSV, JSON or HTML'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "collect" -d 'Server side: store what the boards publish (results, summaries, telemetry, devices, sweeps) in SQLite or PostgreSQL; runs until stopped'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "import" -d 'Add `edgebench run` results files to the fleet store (de-duplicated on run_id)'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "probe" -d 'Show the board, every telemetry probe found and its current readings'
complete -c edgebench -n "__fish_edgebench_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -s c -l config -d 'Config file (default: /etc/edgebench/edgebench.toml when present)' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l set -d 'Override one config key, highest layer: `--set tensorrt.fp16=true`, `--set cuda.device_id=1` (repeatable)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l sweep -d 'Named sweep from the configuration' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l models -d 'Models (names from the manifest, or @set), comma-separated' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l batch -d 'Batch sizes, comma-separated, or `auto`: search the knee ([batch_search])' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l ep -d 'Execution providers (ort): cpu, cuda, tensorrt, xnnpack, openvino, acl...' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l threads -d 'Intra-op thread counts, comma-separated (0: runtime default)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l precision -d 'Precisions: fp32, fp16 (TensorRT), int8' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l backend -d 'Backend: ort or tflite' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l delegate -d 'TFLite delegate: edgetpu (default none: CPU)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l out -d 'Results file (JSON Lines). Default: results/<sweep id>.jsonl' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l json -d 'Write records to stdout as JSON Lines (the table goes to stderr)'
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -l strict -d 'Exit with status 3 when any configuration failed'
complete -c edgebench -n "__fish_edgebench_using_subcommand run" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_using_subcommand models" -s c -l config -d 'Config file (default: /etc/edgebench/edgebench.toml when present)' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand models" -l set -d 'Override one config key, highest layer: `--set tensorrt.fp16=true`, `--set cuda.device_id=1` (repeatable)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand models" -l json -d 'One JSON object per model on stdout'
complete -c edgebench -n "__fish_edgebench_using_subcommand models" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_using_subcommand check-config" -s c -l config -d 'Config file (default: /etc/edgebench/edgebench.toml when present)' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand check-config" -l set -d 'Override one config key, highest layer: `--set tensorrt.fp16=true`, `--set cuda.device_id=1` (repeatable)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_using_subcommand generate-config" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_using_subcommand info" -s c -l config -d 'Config file (default: /etc/edgebench/edgebench.toml when present)' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand info" -l set -d 'Override one config key, highest layer: `--set tensorrt.fp16=true`, `--set cuda.device_id=1` (repeatable)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand info" -l json
complete -c edgebench -n "__fish_edgebench_using_subcommand info" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_using_subcommand daemon" -s c -l config -d 'Config file (default: /etc/edgebench/edgebench.toml when present)' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand daemon" -l set -d 'Override one config key, highest layer: `--set tensorrt.fp16=true`, `--set cuda.device_id=1` (repeatable)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand daemon" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_using_subcommand report" -l db -d 'Also read the fleet store (`edgebench collect` / `import`): `sqlite:PATH` or `postgres://user@host/db`' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand report" -l baseline -d 'The platform gains are measured against, e.g. `board=raspberrypi5,ep=cpu` (keys: board, backend, ep/provider/delegate, threads, runtime). Default: the slowest platform' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand report" -l format -r -f -a "table\t'Aligned text for the terminal'
md\t'Markdown tables (render on any forge)'
csv\t'One row per aggregated configuration, with its gain'
json\t'The whole report as one JSON document'
html\t'One self-contained HTML file with inline SVG figures'"
complete -c edgebench -n "__fish_edgebench_using_subcommand report" -l out -d 'Write to this file instead of stdout' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand report" -l where -d 'Keep only results with KEY=VALUE (repeatable; all must hold). Keys: board, backend, ep, precision, model, arch, batch, batch_mode, threads, device_id, runtime_version, status, sweep_id, task' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand report" -l knee-fraction -d 'Fraction of the peak throughput that defines the knee' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c edgebench -n "__fish_edgebench_using_subcommand collect" -s c -l config -d 'Config file (`[mqtt]` for the broker, `[collect]` for the store; default /etc/edgebench/edgebench.toml when present)' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand collect" -l set -d 'Override one config key: `--set collect.share_group=g1` (repeatable)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand collect" -l db -d 'Store URL: `sqlite:PATH` or `postgres://user@host:port/db` (overrides `[collect] db`)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand collect" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_using_subcommand import" -l db -d 'Store URL: `sqlite:PATH` or `postgres://user@host:port/db` (default: `[collect] db`)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand import" -s c -l config -d 'Config file (for `[collect] db`; default /etc/edgebench/edgebench.toml when present)' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand import" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_using_subcommand probe" -s c -l config -d 'Config file (default: /etc/edgebench/edgebench.toml when present)' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand probe" -l set -d 'Override one config key, highest layer: `--set tensorrt.fp16=true`, `--set cuda.device_id=1` (repeatable)' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand probe" -l sysroot -d 'Read under this directory instead of / (a capture, or the host\'s root mounted in a container)' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand probe" -l capture -d 'Copy the files the probes read into DIR (new or empty), for `--sysroot DIR`' -r -F
complete -c edgebench -n "__fish_edgebench_using_subcommand probe" -l board -d 'Board id to use instead of detecting it' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand probe" -l rail-table -d 'Rail table (board id) or rails joined by `+` for board power' -r
complete -c edgebench -n "__fish_edgebench_using_subcommand probe" -l json -d 'Print JSON instead of a table'
complete -c edgebench -n "__fish_edgebench_using_subcommand probe" -s h -l help -d 'Print help'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "run" -d 'Run a benchmark sweep: print a table and write JSON Lines results'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "models" -d 'List the model zoo: files present, sizes, sha256 check'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "check-config" -d 'Validate the configuration and print the merged result'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "generate-config" -d 'Print the documented default configuration'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "info" -d 'Runtimes found, their versions and usable providers / delegates'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "daemon" -d 'Run as a service: sweeps on boot, on a timetable or on MQTT commands; results, progress and telemetry published over MQTT (systemd `Type=notify`)'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "report" -d 'Compare result files across boards, runtimes and dates: latency, gains against a baseline platform, knees; as a table, Markdown, CSV, JSON or HTML'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "collect" -d 'Server side: store what the boards publish (results, summaries, telemetry, devices, sweeps) in SQLite or PostgreSQL; runs until stopped'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "import" -d 'Add `edgebench run` results files to the fleet store (de-duplicated on run_id)'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "probe" -d 'Show the board, every telemetry probe found and its current readings'
complete -c edgebench -n "__fish_edgebench_using_subcommand help; and not __fish_seen_subcommand_from run models check-config generate-config info daemon report collect import probe help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
