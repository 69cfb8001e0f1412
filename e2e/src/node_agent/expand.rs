//! `$(VAR)` expansion in env values, command and args, exactly as Kubernetes does it
//! (`third_party/forked/golang/expansion`): `$(NAME)` is replaced when NAME is defined,
//! left as written otherwise; `$$` is an escaped `$`; any other `$` stays.

/// Expands `$(NAME)` references in `input` with `lookup`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        match after.chars().next() {
            // A trailing `$` is copied as is.
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                // An unterminated reference is copied as is.
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(other) => {
                out.push('$');
                out.push(other);
                rest = &after[other.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands with an ordered list of `(name, value)` pairs; the last definition wins.
pub fn expand_with(input: &str, vars: &[(String, String)]) -> String {
    expand(input, |name| vars.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        [("POD_IP", "127.0.1.2"), ("PORT", "8080"), ("EMPTY", ""), ("PORT", "9090")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn matches_the_kubernetes_expansion_cases() {
        let vars = vars();
        let cases = [
            ("$(POD_IP):$(PORT)", "127.0.1.2:9090"),
            ("--listen=$(POD_IP)", "--listen=127.0.1.2"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("x$(EMPTY)y", "xy"),
            ("$$(POD_IP)", "$(POD_IP)"),
            ("$$$(POD_IP)", "$127.0.1.2"),
            ("$$$$", "$$"),
            ("$(POD_IP", "$(POD_IP"),
            ("$POD_IP", "$POD_IP"),
            ("cost $5", "cost $5"),
            ("trailing $", "trailing $"),
            ("$()", "$()"),
            ("é$é$(PORT)", "é$é9090"),
            ("no refs", "no refs"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand_with(input, &vars), want, "input {input:?}");
        }
    }
}
