//! The `igloo` binary; everything lives in the library.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    igloo::cli::main().await
}
