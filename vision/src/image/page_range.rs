//! Which pages of a document of several pages (a PDF, a multi-page TIFF) a request reads.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// The caller's page range: 1-based and inclusive; 0 leaves that end open (the first or
/// the last page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PageRange {
    pub first: u32,
    pub last: u32,
}

/// Why a page range does not fit the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PageRangeError {
    #[error("first_page {first} is after last_page {last}")]
    FirstAfterLast { first: u32, last: u32 },
    #[error("the document has {page_count} pages; first_page {first} is past its end")]
    PastTheEnd { first: u32, page_count: usize },
    #[error(
        "the request reads {selected} pages; this server reads at most {max_pages} per request: \
         send a range of pages (first_page, last_page)"
    )]
    TooManyPages { selected: usize, max_pages: usize },
}

impl PageRange {
    /// Every page.
    pub const ALL: Self = Self { first: 0, last: 0 };

    /// The 0-based indices this range selects in a document of `page_count` pages; a
    /// `last` past the end stops at the last page (as "to the end" does). More than
    /// `max_pages` pages is an error, so a caller learns to ask for a range instead of
    /// getting a silently shortened answer.
    pub fn select(self, page_count: usize, max_pages: usize) -> Result<RangeInclusive<usize>, PageRangeError> {
        let (first, last) = (self.first, self.last);
        if last != 0 && first > last {
            return Err(PageRangeError::FirstAfterLast { first, last });
        }
        let start = first.max(1) as usize;
        if start > page_count {
            return Err(PageRangeError::PastTheEnd { first: first.max(1), page_count });
        }
        let end = if last == 0 { page_count } else { (last as usize).min(page_count) };
        let selected = end - start + 1;
        if selected > max_pages {
            return Err(PageRangeError::TooManyPages { selected, max_pages });
        }
        Ok(start - 1..=end - 1)
    }

    /// Whether the caller chose a range at all.
    pub fn is_all(self) -> bool {
        self == Self::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_ends_select_the_whole_document() {
        assert_eq!(PageRange::ALL.select(5, 50), Ok(0..=4));
        assert_eq!(PageRange { first: 2, last: 0 }.select(5, 50), Ok(1..=4));
        assert_eq!(PageRange { first: 0, last: 3 }.select(5, 50), Ok(0..=2));
    }

    #[test]
    fn a_last_page_past_the_end_stops_at_the_end() {
        assert_eq!(PageRange { first: 4, last: 99 }.select(5, 50), Ok(3..=4));
    }

    #[test]
    fn ranges_that_select_nothing_are_errors() {
        assert_eq!(
            PageRange { first: 3, last: 2 }.select(5, 50),
            Err(PageRangeError::FirstAfterLast { first: 3, last: 2 })
        );
        assert_eq!(
            PageRange { first: 6, last: 0 }.select(5, 50),
            Err(PageRangeError::PastTheEnd { first: 6, page_count: 5 })
        );
        assert_eq!(PageRange::ALL.select(0, 50), Err(PageRangeError::PastTheEnd { first: 1, page_count: 0 }));
    }

    #[test]
    fn more_pages_than_allowed_is_refused_not_shortened() {
        let error = PageRange::ALL.select(120, 50).unwrap_err();
        assert_eq!(error, PageRangeError::TooManyPages { selected: 120, max_pages: 50 });
        assert!(error.to_string().contains("first_page, last_page"), "{error}");
        assert_eq!(PageRange { first: 51, last: 100 }.select(120, 50), Ok(50..=99));
    }
}
