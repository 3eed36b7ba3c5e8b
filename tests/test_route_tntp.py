"""The TNTP importer reads the reference networks and names file and line on bad input."""

from pathlib import Path

import numpy as np
import pytest

from uda.errors import UserError
from uda.io import tntp

DATA = Path(__file__).parent / "data" / "tntp"
SIOUX = DATA / "SiouxFalls"
BRAESS = DATA / "Braess-Example"

NET_HEADER = """<NUMBER OF ZONES> 2
<NUMBER OF NODES> 3
<FIRST THRU NODE> 3
<NUMBER OF LINKS> {links}
<END OF METADATA>

~ init term cap len fft b power ;
"""


def _refused(read, f, needle: str) -> None:
    """``read(f)`` raises a :class:`UserError` that names the file and says ``needle``."""
    with pytest.raises(UserError) as err:
        read(f)
    assert str(f) in str(err.value)
    assert needle in str(err.value)


def test_sioux_falls_net():
    net = tntp.read_net(SIOUX / "SiouxFalls_net.tntp")
    assert net.name == "SiouxFalls"
    assert (net.num_zones, net.num_nodes, net.first_thru_node, net.num_links) == (24, 24, 1, 76)
    assert net.init_node[:3].tolist() == [1, 1, 2]
    assert net.term_node[:3].tolist() == [2, 3, 1]
    assert net.capacity[0] == pytest.approx(25900.20064)
    assert net.free_flow_time[1] == 4.0
    assert np.all(net.b == 0.15) and np.all(net.power == 4)
    assert net.metadata["NUMBER OF LINKS"] == "76"


def test_sioux_falls_trips_flow_node():
    trips = tntp.read_trips(SIOUX / "SiouxFalls_trips.tntp")
    assert trips.demand.shape == (24, 24)
    assert trips.demand.sum() == pytest.approx(360600.0)
    assert trips.total_od_flow == 360600.0
    assert trips.demand[0, 9] == 1300.0  # origin 1 -> 10
    assert trips.demand[1, 0] == 100.0
    flow = tntp.read_flow(SIOUX / "SiouxFalls_flow.tntp")
    assert flow["volume"].size == 76
    assert flow["volume"][0] == pytest.approx(4494.6576464564205)
    node = tntp.read_node(SIOUX / "SiouxFalls_node.tntp")
    assert node["node"].tolist() == list(range(1, 25))


def test_braess_last_row_without_space_before_semicolon():
    net, trips = tntp.read_folder(BRAESS)
    assert net.num_links == 5
    assert net.link_type.tolist() == [1] * 5
    assert trips.demand.tolist() == [[0.0, 6.0], [0.0, 0.0]]


def test_comments_and_optional_columns(tmp_path):
    f = tmp_path / "T_net.tntp"
    f.write_text(NET_HEADER.format(links=2) + "1 3 10 1 2 0.15 4 ; ~ a comment\n~ whole-line comment\n3 2 10 1 2 0.15 4 0 0 1;\n")
    net = tntp.read_net(f)
    assert net.first_thru_node == 3
    assert net.speed.tolist() == [0.0, 0.0]
    assert net.link_type.tolist() == [0, 1]


@pytest.mark.parametrize(("body", "links", "needle"), [
    ("1 3 10 1 2 0.15 ;\n", 1, "line 8: expected at least 7 columns"),
    ("1 3 ten 1 2 0.15 4 ;\n", 1, "line 8: 'ten' is not a number"),
    ("1 9 10 1 2 0.15 4 ;\n", 1, "line 8: link 1 -> 9 names a node outside 1..3"),
    ("1 3 -5 1 2 0.15 4 ;\n", 1, "line 8: negative capacity -5"),
    ("1 3 0 1 2 0.15 4 ;\n", 1, "line 8: capacity 0 on a link with b > 0"),
    ("1 3 10 1 -2 0.15 4 ;\n", 1, "line 8: negative free_flow_time"),
    ("1 3 10 1 2 0.15 4 ;\n", 2, "<NUMBER OF LINKS> is 2 but 1 link rows were read"),
])
def test_malformed_net(tmp_path, body, links, needle):
    f = tmp_path / "Bad_net.tntp"
    f.write_text(NET_HEADER.format(links=links) + body)
    _refused(tntp.read_net, f, needle)


def test_missing_end_of_metadata(tmp_path):
    f = tmp_path / "Bad_net.tntp"
    f.write_text("<NUMBER OF ZONES> 2\n<NUMBER OF NODES> 3\n<NUMBER OF LINKS> 1\n1 3 10 1 2 0.15 4 ;\n")
    with pytest.raises(UserError, match="line 4: expected a <KEY> value header line"):
        tntp.read_net(f)


def test_missing_header_key(tmp_path):
    f = tmp_path / "Bad_net.tntp"
    f.write_text("<NUMBER OF ZONES> 2\n<END OF METADATA>\n")
    with pytest.raises(UserError, match="no <NUMBER OF NODES> entry"):
        tntp.read_net(f)


@pytest.mark.parametrize(("body", "needle"), [
    ("1 : 5.0;\n", "line 4: OD entries before the first 'Origin <zone>' line"),
    ("Origin 1\n 2 : five;\n", "line 5: expected 'zone : flow;'"),
    ("Origin 1\n 2 : 5.0\n", "line 5: entry '2 : 5.0' does not end with ';'"),
    ("Origin 3\n", "line 4: origin zone 3 is outside 1..2"),
    ("Origin 1\n 7 : 1;\n", "line 5: destination zone 7 is outside 1..2"),
    ("Origin 1\n 2 : -1;\n", "line 5: OD flow -1 must be finite and >= 0"),
])
def test_malformed_trips(tmp_path, body, needle):
    f = tmp_path / "Bad_trips.tntp"
    f.write_text("<NUMBER OF ZONES> 2\n<END OF METADATA>\n\n" + body)
    _refused(tntp.read_trips, f, needle)


def test_malformed_flow(tmp_path):
    f = tmp_path / "Bad_flow.tntp"
    f.write_text("From To Volume Cost\n1 2 3.0 4.0\n1 3 x 4.0\n")
    with pytest.raises(UserError, match="line 3: 'x' is not a number"):
        tntp.read_flow(f)


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        tntp.read_folder(tmp_path / "nope")
    with pytest.raises(UserError, match="has no \\*_net.tntp file"):
        tntp.read_folder(tmp_path)
    (tmp_path / "A_net.tntp").write_text(NET_HEADER.format(links=0))
    (tmp_path / "A_trips.tntp").write_text("<NUMBER OF ZONES> 3\n<END OF METADATA>\n")
    with pytest.raises(UserError, match="has 3 zones but .* has 2"):
        tntp.read_folder(tmp_path)
    with pytest.raises(UserError, match="is a folder"):
        tntp.read_net(tmp_path)
