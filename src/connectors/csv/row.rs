//! One row's fields as the CSV parser left them: slices of a chunk's text,
//! read by both decoders (serde's in `de`, the schema's in `decode`).

/// The fields of one row, in a chunk's text.
#[derive(Clone, Copy)]
pub(super) struct RowText<'a> {
    text: &'a str,
    /// Where the first field starts in `text`.
    from: usize,
    /// Where each field ends in `text`.
    ends: &'a [usize],
}

impl<'a> RowText<'a> {
    pub(super) fn new(text: &'a str, from: usize, ends: &'a [usize]) -> Self {
        RowText { text, from, ends }
    }

    /// Field `i`, if the row has one.
    pub(super) fn get(&self, i: usize) -> Option<&'a str> {
        let end = *self.ends.get(i)?;
        let from = match i {
            0 => self.from,
            _ => self.ends[i - 1],
        };
        self.text.get(from..end)
    }

    /// Every field, in order.
    pub(super) fn iter(self) -> impl Iterator<Item = &'a str> {
        let mut from = self.from;
        self.ends.iter().map(move |&end| {
            let field = self.text.get(from..end).unwrap_or_default();
            from = end;
            field
        })
    }
}
