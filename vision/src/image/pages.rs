//! Documents of several pages as they are sent as images: a multi-page TIFF (a fax, a
//! scanner's batch). Each page becomes bytes that [`super::decode_image`] reads as a
//! single image: a copy of the file whose header points at that page's directory (IFD), so
//! every page gets the same decoding, limits, colour handling and orientation as a
//! single image. Only the directory chain is walked here; no pixel is touched.
//!
//! TIFF layout (TIFF 6.0, section 2): an 8-byte header (`II` or `MM`, 42, the offset of the
//! first IFD); each IFD is a 2-byte entry count, 12-byte entries and the 4-byte offset of
//! the next IFD (0 ends the chain). BigTIFF (version 43) is read as a single page.

/// How many pages a document has and where each starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentPages {
    /// One image (every format but a TIFF with more than one directory).
    Single,
    /// A TIFF: the byte offset of each page's IFD, in file order.
    Tiff(Vec<u32>),
}

impl DocumentPages {
    pub fn count(&self) -> usize {
        match self {
            Self::Single => 1,
            Self::Tiff(offsets) => offsets.len(),
        }
    }
}

/// Why the pages of a document cannot be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagesError {
    #[error("the document has more than {max_pages} pages; send at most {max_pages} per request")]
    TooManyPages { max_pages: usize },
    #[error("the TIFF's page directory chain is broken: {reason}")]
    BrokenChain { reason: &'static str },
}

/// The pages of `bytes`: several for a TIFF with more than one IFD, else one. At most
/// `max_pages` are listed; a chain that loops or points outside the file is an error.
pub fn document_pages(bytes: &[u8], max_pages: usize) -> Result<DocumentPages, PagesError> {
    let Some(order) = tiff_byte_order(bytes) else {
        return Ok(DocumentPages::Single);
    };
    let mut offsets = Vec::new();
    let mut next = order.u32_at(bytes, 4).ok_or(PagesError::BrokenChain { reason: "no first directory offset" })?;
    while next != 0 {
        if offsets.contains(&next) {
            return Err(PagesError::BrokenChain { reason: "a directory points back at an earlier one" });
        }
        if offsets.len() == max_pages {
            return Err(PagesError::TooManyPages { max_pages });
        }
        let at = next as usize;
        let entries =
            order.u16_at(bytes, at).ok_or(PagesError::BrokenChain { reason: "a directory is outside the file" })?;
        let next_at = at + 2 + 12 * usize::from(entries);
        offsets.push(next);
        next =
            order.u32_at(bytes, next_at).ok_or(PagesError::BrokenChain { reason: "a directory runs past the end" })?;
    }
    Ok(match offsets.len() {
        0 | 1 => DocumentPages::Single,
        _ => DocumentPages::Tiff(offsets),
    })
}

/// The bytes of one page of a multi-page TIFF as a TIFF of its own: the file with its
/// header pointing at the page's IFD (the rest of the file is left as it is, since the
/// page's entries point into it). The decoder reads only the first directory, so the
/// pages after it are ignored.
pub fn tiff_page_bytes(bytes: &[u8], ifd_offset: u32) -> Vec<u8> {
    let mut page = bytes.to_vec();
    if let Some(order) = tiff_byte_order(bytes) {
        let offset = match order {
            ByteOrder::Little => ifd_offset.to_le_bytes(),
            ByteOrder::Big => ifd_offset.to_be_bytes(),
        };
        page[4..8].copy_from_slice(&offset);
    }
    page
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn u16_at(self, bytes: &[u8], at: usize) -> Option<u16> {
        let raw: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Self::Little => u16::from_le_bytes(raw),
            Self::Big => u16::from_be_bytes(raw),
        })
    }

    fn u32_at(self, bytes: &[u8], at: usize) -> Option<u32> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Self::Little => u32::from_le_bytes(raw),
            Self::Big => u32::from_be_bytes(raw),
        })
    }
}

/// The byte order of a classic TIFF (version 42), or `None` for anything else.
fn tiff_byte_order(bytes: &[u8]) -> Option<ByteOrder> {
    let order = match bytes.get(..2)? {
        b"II" => ByteOrder::Little,
        b"MM" => ByteOrder::Big,
        _ => return None,
    };
    (order.u16_at(bytes, 2)? == 42).then_some(order)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{GrayImage, Luma, RgbImage};
    use tiff::encoder::{TiffEncoder, colortype};

    use super::*;
    use crate::image::{DecodeLimits, decode_image};

    /// A TIFF of `pages` pages, page `i` a 4 × 3 grey image filled with `i * 40`.
    fn multi_page_tiff(pages: u8) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        let mut encoder = TiffEncoder::new(&mut bytes).unwrap();
        for page in 0..pages {
            let image = GrayImage::from_pixel(4, 3, Luma([page * 40]));
            encoder.write_image::<colortype::Gray8>(4, 3, image.as_raw()).unwrap();
        }
        bytes.into_inner()
    }

    #[test]
    fn each_page_of_a_tiff_decodes_as_an_image_of_its_own() {
        let tiff = multi_page_tiff(3);
        let DocumentPages::Tiff(offsets) = document_pages(&tiff, 10).unwrap() else { panic!("three pages") };
        assert_eq!(offsets.len(), 3);
        for (page, offset) in offsets.iter().enumerate() {
            let image: RgbImage = decode_image(&tiff_page_bytes(&tiff, *offset), DecodeLimits::default()).unwrap();
            let value = page as u8 * 40;
            assert_eq!(image.get_pixel(2, 1).0, [value; 3], "page {page}");
        }
    }

    #[test]
    fn a_single_page_tiff_and_other_formats_are_one_page() {
        assert_eq!(document_pages(&multi_page_tiff(1), 10).unwrap(), DocumentPages::Single);
        assert_eq!(document_pages(b"\x89PNG\r\n\x1a\n....", 10).unwrap(), DocumentPages::Single);
        assert_eq!(document_pages(b"", 10).unwrap(), DocumentPages::Single);
    }

    #[test]
    fn too_many_pages_are_refused_before_any_is_decoded() {
        assert_eq!(document_pages(&multi_page_tiff(5), 4), Err(PagesError::TooManyPages { max_pages: 4 }));
        assert_eq!(document_pages(&multi_page_tiff(4), 4).unwrap().count(), 4);
    }

    #[test]
    fn a_looping_or_truncated_chain_is_refused() {
        let tiff = multi_page_tiff(2);
        let DocumentPages::Tiff(offsets) = document_pages(&tiff, 10).unwrap() else { panic!("two pages") };
        // Point the second directory's "next" back at the first.
        let second = offsets[1] as usize;
        let entries = u16::from_le_bytes([tiff[second], tiff[second + 1]]) as usize;
        let mut looping = tiff.clone();
        let next_at = second + 2 + 12 * entries;
        looping[next_at..next_at + 4].copy_from_slice(&offsets[0].to_le_bytes());
        assert!(matches!(document_pages(&looping, 10), Err(PagesError::BrokenChain { .. })));
        let truncated = &tiff[..second + 4];
        assert!(matches!(document_pages(truncated, 10), Err(PagesError::BrokenChain { .. })));
        let mut outside = tiff.clone();
        outside[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(document_pages(&outside, 10), Err(PagesError::BrokenChain { .. })));
    }
}
