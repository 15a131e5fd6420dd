//! `observer unpin [DIR]`: removes what `observer run --pin DIR` left in the kernel.

use std::{path::PathBuf, process::ExitCode};

use observer_wire::printable::escaped;

use crate::capture::{self, pins};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The pin directory given to `observer run --pin`.
    #[arg(value_name = "DIR", default_value = capture::DEFAULT_PIN_DIR)]
    pub dir: PathBuf,
}

/// Removes the pins (links first, so the programs detach, then the maps) and says what went.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let shown = |path: &std::path::Path| escaped(&path.display().to_string());
    let Some(removed) = pins::unpin(&args.dir)? else {
        println!("nothing pinned at {}: no such directory", shown(&args.dir));
        return Ok(ExitCode::SUCCESS);
    };
    if removed.links.is_empty() && removed.maps.is_empty() {
        println!("nothing pinned at {}", shown(&args.dir));
    }
    for link in &removed.links {
        println!("removed link {}", shown(link));
    }
    for map in &removed.maps {
        println!("removed map {}", shown(map));
    }
    if removed.dir_removed {
        println!("removed directory {}", shown(&args.dir));
    } else {
        println!("kept directory {} (a mount point, or not empty)", shown(&args.dir));
    }
    Ok(ExitCode::SUCCESS)
}
