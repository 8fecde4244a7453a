//! The `Content-Range` header of a resumed download (`image::http::parse_content_range`),
//! which says where the bytes of a `206 Partial Content` answer start: a wrong start would
//! splice the rest of an image at the wrong offset.
//!
//! The header comes from the image server or any mirror it redirects to. Each input is the
//! header's value (HTTP header values are visible ASCII, but distrod must not rely on it).

use distrod::image::http::parse_content_range;

pub fn run(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((start, total)) = parse_content_range(value) {
        assert!(
            value.contains(&start.to_string()),
            "start {start} is not in {value:?}"
        );
        if let Some(total) = total {
            assert!(
                value.contains(&total.to_string()),
                "total {total} is not in {value:?}"
            );
        }
    }
}
