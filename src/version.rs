//! The line `distrod --version` prints: `distrod <version> (build <id>)`, the id being 16
//! bytes.
//!
//! The id lives in one static slot, the marker `distrod-build-id:` followed by the 16 bytes,
//! which occurs exactly once in the binary. Stamping a copy of the binary with another id
//! is a matter of finding the marker and overwriting the 16 bytes after it, without
//! rebuilding: that is how the tests make "a newer binary" for `distrod update`. The slot is
//! read with a volatile read, so the compiler cannot fold its build-time content into the
//! code and a stamped id is what gets printed.

use std::sync::OnceLock;

/// Length of the build id.
pub const BUILD_ID_LEN: usize = 16;
/// Length of `distrod-build-id:`, the marker in front of the id. The marker is spelled
/// only in [`BUILD_ID_SLOT`], so that it occurs once in the binary.
const MARKER_LEN: usize = 17;

#[used]
static BUILD_ID_SLOT: [u8; MARKER_LEN + BUILD_ID_LEN] = *b"distrod-build-id:dev-------------";

/// The build id as stored in the binary (a stamped copy shows its stamp).
pub fn build_id() -> String {
    // SAFETY: a read of a static's bytes; volatile only so that the read really happens.
    let slot = unsafe { std::ptr::read_volatile(&BUILD_ID_SLOT) };
    String::from_utf8_lossy(&slot[MARKER_LEN..]).into_owned()
}

/// `<version> (build <id>)`: what clap prints after `distrod `.
pub fn text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| format!("{} (build {})", env!("CARGO_PKG_VERSION"), build_id()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_slot_is_a_marker_and_an_id() {
        assert_eq!(
            &super::BUILD_ID_SLOT[..super::MARKER_LEN],
            b"distrod-build-id:"
        );
        assert_eq!(super::build_id().len(), super::BUILD_ID_LEN);
        assert_eq!(
            super::text(),
            format!("{} (build dev-------------)", env!("CARGO_PKG_VERSION"))
        );
    }
}
