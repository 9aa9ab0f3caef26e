use super::*;

#[test]
fn markdown_table_pads_and_right_aligns_numbers() {
    let mut table = Table::new(&["clients", "system", "ops/s"]);
    table.push(vec!["1".into(), "mortar".into(), ops(1140.4)]);
    table.push(vec!["256".into(), "etcd".into(), ops(23_456.0)]);
    assert_eq!(
        table.markdown(),
        "| clients | system |  ops/s |\n\
         | ------: | ------ | -----: |\n\
         |       1 | mortar |  1,140 |\n\
         |     256 | etcd   | 23,456 |"
    );
}

#[test]
#[should_panic(expected = "row width differs")]
fn a_row_of_the_wrong_width_is_a_bug() {
    Table::new(&["a", "b"]).push(vec!["1".into()]);
}

#[test]
fn numbers_are_formatted_for_people() {
    assert_eq!(ops(0.0), "0");
    assert_eq!(ops(999.6), "1,000");
    assert_eq!(ops(1_234_567.0), "1,234,567");
    assert_eq!(ms(0.834), "0.83");
    assert_eq!(ms(12.44), "12.4");
    assert_eq!(ratio(3.0, 2.0), "1.50×");
    assert_eq!(ratio(3.0, 0.0), "-");
}
