use clap::{Parser, Subcommand};

/// edgebench: how fast does a neural network really run on this board?
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the board, every telemetry probe found and its readings
    Probe(edgebench::telemetry::cli::ProbeArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Probe(args) => edgebench::telemetry::cli::probe(&args),
    };
    if let Err(e) = result {
        eprintln!("edgebench: {e:#}");
        std::process::exit(1);
    }
}
