use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use corelink_load::cli::{Args, Config};
use corelink_load::report;

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corelink-load: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    let cfg = Config::from_args(&args)?;
    let show_progress = std::io::stderr().is_terminal();
    let result = corelink_load::run(&cfg, show_progress)?;

    print!("{}", report::text(&cfg, &result));
    if args.print_distribution {
        println!("  latency distribution (ms):");
        print!("{}", report::hgrm(&result.stats.latency));
    }
    if let Some(path) = &args.hgrm {
        std::fs::write(path, report::hgrm(&result.stats.latency))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        let mut text = serde_json::to_string_pretty(&report::json(&cfg, &result))?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, report::svg(&cfg, &result)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
