//! Terminal QR codes, printed in Unicode half blocks whether or not stdout is a terminal:
//! the one renderer for `admin pair create` and `device login`.

use anyhow::Context;
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

/// The QR code of a payload in Unicode half blocks, light modules drawn in the terminal's
/// foreground, with the quiet zone: it scans from a dark terminal as printed.
pub fn qr_blocks(payload: &str) -> anyhow::Result<String> {
    let code = QrCode::new(payload.as_bytes()).context("encoding the QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}
