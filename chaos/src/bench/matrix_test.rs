use super::*;

fn base() -> Row {
    Row { clients: 1, conflict: 0.0, reads: 0.0, value_size: 100, rate: None }
}

fn words(text: &[&str]) -> Vec<String> {
    text.iter().map(|w| w.to_string()).collect()
}

#[test]
fn rows_are_every_combination_first_dimension_outermost() {
    let matrix = parse(&words(&["clients=1,16", "conflict=0,1"]), base()).unwrap();
    assert_eq!(matrix.dimensions, [Dimension::Clients, Dimension::Conflict]);
    let pairs: Vec<(u64, f64)> = matrix.rows.iter().map(|r| (r.clients, r.conflict)).collect();
    assert_eq!(pairs, [(1, 0.0), (1, 1.0), (16, 0.0), (16, 1.0)]);
    assert!(matrix.rows.iter().all(|r| r.value_size == 100 && r.rate.is_none()));
}

#[test]
fn one_argument_may_hold_several_words() {
    let one = parse(&words(&["clients=1,16 conflict=0,1"]), base()).unwrap();
    let two = parse(&words(&["clients=1,16", "conflict=0,1"]), base()).unwrap();
    assert_eq!(one, two);
}

#[test]
fn rate_zero_is_a_closed_loop() {
    let matrix = parse(&words(&["rate=0,500", "value-size=10"]), base()).unwrap();
    let rates: Vec<Option<f64>> = matrix.rows.iter().map(|r| r.rate).collect();
    assert_eq!(rates, [None, Some(500.0)]);
    assert_eq!(matrix.rows[1].value_size, 10);
    assert_eq!(matrix.rows[1].get(Dimension::Rate), 500.0);
}

#[test]
fn no_words_is_the_base_row() {
    let matrix = parse(&[], base()).unwrap();
    assert_eq!(matrix.rows, [base()]);
}

#[test]
fn mistakes_are_named() {
    let error = |text: &[&str]| parse(&words(text), base()).unwrap_err();
    assert!(error(&["clients"]).contains("not name=v1,v2"), "{}", error(&["clients"]));
    assert!(error(&["threads=1"]).contains("unknown dimension `threads`; use clients, conflict"));
    assert!(error(&["clients=1", "clients=2"]).contains("given twice"));
    assert!(error(&["clients=x"]).contains("`x` in `clients=x` is not a number"));
    assert!(error(&["clients=0"]).contains("clients=0 is out of range: give 1 to 4096"));
    assert!(error(&["clients=1.5"]).contains("out of range"));
    assert!(error(&["conflict=2"]).contains("conflict=2 is out of range: give 0.0 to 1.0"));
    assert!(error(&["clients="]).contains("has no values"));
    let many: Vec<String> = (1..=17).map(|i| i.to_string()).collect();
    let many = many.join(",");
    let e = error(&[&format!("clients={many}"), &format!("value-size={many}")]);
    assert!(e.contains("more than 256 rows"), "{e}");
}
