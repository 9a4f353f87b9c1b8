//! Nearest-name lookup for "did you mean" hints.

/// Levenshtein distance over chars.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `query` (case-insensitive), scoring each by the
/// best of its `keys`, if it is close enough to be a plausible typo: within
/// half the query's length.
pub(crate) fn nearest<'a, I>(query: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = (&'a str, Vec<String>)>,
{
    let q = query.trim().to_ascii_lowercase();
    if q.is_empty() {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for (name, keys) in candidates {
        let d = keys
            .iter()
            .map(|k| {
                let k = k.to_ascii_lowercase();
                // A query that is a prefix/part of a name ("qwen3-32") is as
                // good as a one-letter typo.
                if k == q {
                    0
                } else if k.contains(&q) {
                    1
                } else {
                    edit_distance(&q, &k)
                }
            })
            .min()
            .unwrap_or(usize::MAX);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, name));
        }
    }
    let limit = (q.chars().count() / 2).max(2);
    best.filter(|(d, _)| *d <= limit)
        .map(|(_, n)| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("h200", "h200"), 0);
    }

    #[test]
    fn nearest_picks_close_names_only() {
        let c = || {
            vec![
                ("h200_sxm", vec!["h200_sxm".into(), "h200".into()]),
                ("gb200", vec!["gb200".into()]),
            ]
        };
        assert_eq!(nearest("h20", c()).as_deref(), Some("h200_sxm"));
        assert_eq!(nearest("gb20O", c()).as_deref(), Some("gb200"));
        assert_eq!(nearest("tpu-v5p-pod", c()), None);
    }
}
