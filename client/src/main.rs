//! `referee-client`: the piste laptop's side of the AI referee.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Talks to an AI referee server.
#[derive(Debug, Parser)]
#[command(name = "referee-client", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask the server whether it is up and its model loaded; prints the JSON.
    Health {
        /// The server's base URL, e.g. http://gpu-box:8080
        server: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Health { server, timeout } => health(&server, timeout).await,
    }
}

/// `GET /health`: prints the answer sorted and indented; exits with the HTTP status on an HTTP
/// error and 1 when the server cannot be reached.
async fn health(server: &str, timeout: f64) -> ExitCode {
    let url = format!("{}/health", server.trim_end_matches('/'));
    let client = match reqwest::Client::builder().timeout(Duration::from_secs_f64(timeout)).build() {
        Ok(c) => c,
        Err(err) => return fail(&format!("cannot build the HTTP client: {err}"), 1),
    };
    let response = match client.get(&url).send().await {
        Ok(r) => r,
        Err(err) => return fail(&format!("cannot reach {url}: {err}"), 1),
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return fail(&format!("HTTP {status}: {text}"), status.as_u16().min(255) as u8);
    }
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(json) => {
            // serde_json's map is ordered by key, so this prints the keys sorted.
            println!("{}", serde_json::to_string_pretty(&json).unwrap_or(text));
            ExitCode::SUCCESS
        }
        Err(err) => fail(&format!("the server's answer is not JSON ({err}): {text}"), 1),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("referee-client: {message}");
    ExitCode::from(code)
}
