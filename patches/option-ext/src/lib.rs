//! Three extension methods on `Option`, with the signatures of option-ext
//! 0.2, which `dirs-sys` calls.

/// Extension methods on `Option`.
pub trait OptionExt<T> {
    /// Whether the option holds a value equal to `x`.
    fn contains<U>(&self, x: &U) -> bool
    where
        U: PartialEq<T>;

    /// `f` of the value, or `default` when there is none.
    fn map_or2<U, F: FnOnce(T) -> U>(self, f: F, default: U) -> U;

    /// `f` of the value, or what `default` makes when there is none.
    fn map_or_else2<U, F: FnOnce(T) -> U, D: FnOnce() -> U>(self, f: F, default: D) -> U;
}

impl<T> OptionExt<T> for Option<T> {
    fn contains<U>(&self, x: &U) -> bool
    where
        U: PartialEq<T>,
    {
        self.as_ref().is_some_and(|value| x == value)
    }

    fn map_or2<U, F: FnOnce(T) -> U>(self, f: F, default: U) -> U {
        self.map_or(default, f)
    }

    fn map_or_else2<U, F: FnOnce(T) -> U, D: FnOnce() -> U>(self, f: F, default: D) -> U {
        self.map_or_else(default, f)
    }
}

#[cfg(test)]
mod tests {
    use super::OptionExt;

    #[test]
    fn the_three_methods() {
        assert!(Some(3).contains(&3) && !Some(3).contains(&4) && !None::<i32>.contains(&3));
        assert_eq!(Some(2).map_or2(|v| v * 10, 0), 20);
        assert_eq!(None::<i32>.map_or2(|v| v * 10, 7), 7);
        assert_eq!(None::<i32>.map_or_else2(|v| v, || 9), 9);
    }
}
