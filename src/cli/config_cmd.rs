//! `egress-audit config` and `egress-audit migrate`.

use super::EXIT_OK;
use crate::config::{self, Config};
use crate::store::Store;

/// Prints the effective configuration with secrets masked.
pub(super) fn show(config: &Config) -> anyhow::Result<u8> {
    print!("{}", config::render_masked(config));
    Ok(EXIT_OK)
}

/// Brings the schema up to date and says where.
pub(super) async fn migrate(config: &Config) -> anyhow::Result<u8> {
    let store = Store::open(&config.database).await?;
    store.close().await;
    println!(
        "schema up to date ({}: {})",
        store.backend(),
        config::mask_url(&config.database.url)
    );
    Ok(EXIT_OK)
}
