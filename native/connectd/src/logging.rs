//! Logging to stderr: `RUST_LOG` decides when set; otherwise warnings only, or info with `-v`.
//! Nothing logs a password, an auth hash or a device secret: configs print them redacted (`Debug`).

pub fn init(verbose: bool) {
    let default = if verbose {
        log::LevelFilter::Info
    } else {
        log::LevelFilter::Warn
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(default);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    // A second init (it cannot happen here) would only mean logging is already set up.
    let _ = builder.try_init();
}
