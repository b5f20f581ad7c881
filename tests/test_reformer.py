"""The Reformer separation: constant-size buckets need depth to reach every token, ANNA does not."""

from fastattn_lib import reformer


def test_reformer_receptive_field_grows_by_at_most_2b_per_layer_and_anna_sees_everything_at_once():
    n, bucket = 256, 4
    fields = reformer.receptive_fields(n, bucket, n_layers=5)
    assert fields["anna"][0] == n
    assert all(r <= b for r, b in zip(fields["reformer"], fields["reformer_bound"], strict=True))
    assert fields["reformer"][0] < n
    first_full = next(i + 1 for i, r in enumerate(fields["reformer"]) if r == n)
    assert first_full >= reformer.layers_for_global_average(n, 2 * bucket) > 1
