//! The image arguments of `create`, `pack`, `images` and the Windows installer, as the
//! plain request the image pipeline ([`crate::image::fetch`]) takes: the one place where
//! clap's types meet it.

use crate::cli::{ImageArgs, ServerArgs};
use crate::image::fetch::{ImageRequest, Server};
use crate::image::source;

impl From<&ServerArgs> for Server {
    fn from(args: &ServerArgs) -> Server {
        Server {
            url: args.server.clone(),
            arch: args.arch.clone(),
        }
    }
}

impl From<&ImageArgs> for ImageRequest {
    /// `--cache DIR`, else the default cache unless `--no-cache`.
    fn from(args: &ImageArgs) -> ImageRequest {
        ImageRequest {
            spec: args.spec.clone(),
            image: args.image.clone(),
            sha256: args.sha256.clone(),
            server: Server::from(&args.server),
            cache: if args.download.no_cache {
                None
            } else {
                args.download
                    .cache
                    .clone()
                    .or_else(source::default_cache_dir)
            },
        }
    }
}
