//! Root filesystem images: what the server offers ([`catalog`]), getting the bytes and
//! proving them ([`http`], [`source`]), decompressing ([`decode`]) and unpacking safely
//! ([`unpack`]).

pub mod catalog;
pub mod decode;
pub mod http;
pub mod repack;
pub mod source;
#[cfg(unix)]
pub mod unpack;
pub mod xz;

/// Joins the server's base URL and a path from its catalog. Paths may start with `/` or
/// contain `//` and `:`; they are kept as the server wrote them.
pub fn server_url(server: &str, path: &str) -> String {
    format!(
        "{}/{}",
        server.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_url() {
        assert_eq!(
            super::server_url("http://h:1/", "/images/a//b:c"),
            "http://h:1/images/a//b:c"
        );
        assert_eq!(
            super::server_url("http://h/x", "streams/v1/index.json"),
            "http://h/x/streams/v1/index.json"
        );
    }
}
