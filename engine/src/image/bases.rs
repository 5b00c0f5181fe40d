//! Images built `FROM` other images of the project (Tilt's image dependencies):
//! the dependent is built after its bases, with their built references in its
//! `FROM` lines, so that its content hash, and so its tag, changes with theirs.

use std::io;
use std::path::Path;

use loop_lang::model::Image;
use loop_lang::workload::{from_images, image_matches};

use super::context::resolve;

/// `image` to build, given the refs built so far (`(declared, built)`): when
/// its Dockerfile starts `FROM` one of them, the same image with that Dockerfile
/// inline and each such `FROM` naming the built ref; otherwise `image` as is.
pub fn with_built_bases(
    image: &Image,
    root: &Path,
    built: &[(String, String)],
) -> io::Result<Image> {
    if image.base_images.is_empty() {
        return Ok(image.clone());
    }
    let text = match (&image.dockerfile_contents, &image.dockerfile) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(resolve(root, path))
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?,
        (None, None) => return Ok(image.clone()),
    };
    let mut rewritten = String::with_capacity(text.len());
    let mut last = 0;
    for (reference, range) in from_images(&text, &image.build_args) {
        let base = built.iter().find(|(declared, _)| {
            image.base_images.contains(declared) && image_matches(declared, &reference)
        });
        if let Some((_, built_ref)) = base {
            rewritten.push_str(&text[last..range.start]);
            rewritten.push_str(built_ref);
            last = range.end;
        }
    }
    if last == 0 {
        return Ok(image.clone());
    }
    rewritten.push_str(&text[last..]);
    let mut image = image.clone();
    image.dockerfile_contents = Some(rewritten);
    image.dockerfile = None;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loop_lang::model::ImageKind;
    use loop_lang::Location;

    #[test]
    fn the_from_lines_of_built_bases_name_their_built_refs() {
        let mut image = Image::new("app", ImageKind::Docker, Location::default());
        image.dockerfile_contents =
            Some("FROM base AS b\nFROM other:1\nFROM b\nCOPY . /\n".to_owned());
        image.base_images = vec!["base".to_owned()];
        let built = [("base".to_owned(), "base:loop-0123".to_owned())];
        let out = with_built_bases(&image, Path::new("/"), &built).unwrap();
        assert_eq!(
            out.dockerfile_contents.as_deref(),
            Some("FROM base:loop-0123 AS b\nFROM other:1\nFROM b\nCOPY . /\n")
        );
        // Not built yet (or not a base): unchanged.
        let same = with_built_bases(&image, Path::new("/"), &[]).unwrap();
        assert_eq!(same, image);
    }

    #[test]
    fn a_from_line_naming_a_base_through_an_arg_names_its_built_ref() {
        let mut image = Image::new("app", ImageKind::Docker, Location::default());
        image.dockerfile_contents = Some("ARG BASE=other\nFROM ${BASE}:dev\n".to_owned());
        image
            .build_args
            .insert("BASE".to_owned(), "base".to_owned());
        image.base_images = vec!["base:dev".to_owned()];
        let built = [("base:dev".to_owned(), "base:loop-0123".to_owned())];
        let out = with_built_bases(&image, Path::new("/"), &built).unwrap();
        assert_eq!(
            out.dockerfile_contents.as_deref(),
            Some("ARG BASE=other\nFROM base:loop-0123\n")
        );
    }
}
