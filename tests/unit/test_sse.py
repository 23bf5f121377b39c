"""The SSE reader (chaos.load.sse) and the stream classification built on it: bytes split
anywhere, comments, CRLF, both APIs' terminators, in-band errors, a chunk that is no JSON."""

from __future__ import annotations

import json

from chaos.load.classify import classify_response, classify_stream
from chaos.load.sse import ITL_KEPT, EventReader, StreamStats, answer_fields
from chaos.outcomes import INBAND_ERROR, OK, OTHER, TRUNCATED_SUCCESS

SSE = {"Content-Type": "text/event-stream"}


def _chunk(text: str, finish: str | None = None) -> bytes:
    body = {"choices": [{"delta": {"content": text} if text else {}, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


OPENAI = _chunk("tok1") + _chunk(" tok2") + _chunk("", "stop") + b"data: [DONE]\n\n"


def _anthropic(done: bool = True) -> bytes:
    events = [("message_start", {"type": "message_start", "message": {"id": "m"}}),
              ("content_block_start", {"type": "content_block_start", "index": 0}),
              *[("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": f"tok{i}"}})
                for i in (1, 2, 3)],
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                 "usage": {"output_tokens": 3}})]
    if done:
        events.append(("message_stop", {"type": "message_stop"}))
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    for name, data in events)


def _read(data: bytes, step: int | None = None) -> StreamStats:
    reader = EventReader()
    stats = StreamStats(0.0)
    pieces = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    clock = 0.0
    for piece in pieces:
        clock += 0.01
        for event in reader.feed(piece):
            stats.add(event, clock)
    return stats


def test_events_split_across_reads_at_every_byte_read_the_same() -> None:
    whole = EventReader().feed(OPENAI)
    for step in (1, 2, 3, 7, 64):
        reader = EventReader()
        parts = [e for i in range(0, len(OPENAI), step) for e in reader.feed(OPENAI[i:i + step])]
        assert [(e.event, e.data) for e in parts] == [(e.event, e.data) for e in whole]
    stats = _read(OPENAI, step=1)
    assert (stats.tokens, stats.finish_reason, stats.done, stats.error) == (2, "stop", True, None)
    assert stats.ttft_ms is not None and len(stats.itl_ms) == 1 and stats.itl_ms[0] > 0


def test_comments_and_crlf_and_cr_line_ends() -> None:
    crlf = b": keep-alive\r\n\r\n" + OPENAI.replace(b"\n", b"\r\n")
    for step in (None, 1, 5):
        stats = _read(crlf, step)
        assert (stats.events, stats.tokens, stats.done) == (4, 2, True)  # the comment is no event
    cr = OPENAI.replace(b"\n", b"\r")
    assert (_read(cr, 3).tokens, _read(cr, 3).done) == (2, True)
    events = EventReader().feed(b"event: x\r\ndata: a\r\ndata: b\r\nid: 4\r\n\r\n")
    assert [(e.event, e.data) for e in events] == [("x", "a\nb")]


def test_an_unfinished_event_is_not_dispatched_until_its_blank_line() -> None:
    reader = EventReader()
    assert reader.feed(b"data: [DO") == [] and reader.feed(b"NE]\n") == []
    assert [e.data for e in reader.feed(b"\n")] == ["[DONE]"]


def test_openai_and_anthropic_terminators() -> None:
    assert classify_stream(200, SSE, _read(OPENAI)) == (OK, "200")
    cut = _read(OPENAI.replace(b"data: [DONE]\n\n", b""))
    assert cut.tokens == 2 and cut.finish_reason == "stop" and not cut.done
    assert classify_stream(200, SSE, cut)[0] == TRUNCATED_SUCCESS
    anthropic = _read(_anthropic(), step=11)
    assert (anthropic.tokens, anthropic.finish_reason, anthropic.done) == (3, "end_turn", True)
    assert anthropic.usage_tokens == 3 and classify_stream(200, SSE, anthropic)[0] == OK
    assert classify_stream(200, SSE, _read(_anthropic(done=False)))[0] == TRUNCATED_SUCCESS


def test_error_events_of_every_spelling_are_inband_errors() -> None:
    openai = _chunk("tok1") + b'data: {"error": {"type": "server_error", "message": "boom"}}\n\n'
    named = _chunk("tok1") + b'event: error\ndata: {"error": {"type": "upstream_disconnected"}}\n\n'
    anthropic = (b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
                 b'"message": "Overloaded"}}\n\n')
    plain = b"event: error\ndata: upstream went away\n\n"
    for body in (openai, named, anthropic, plain):
        stats = _read(body)
        outcome, detail = classify_stream(200, SSE, stats)
        assert outcome == INBAND_ERROR and stats.error, (body, detail)
    assert "server_error: boom" in classify_stream(200, SSE, _read(openai))[1]
    # the whole-body classification (a stream not read incrementally) agrees
    assert classify_response(200, SSE, named)[0] == INBAND_ERROR
    assert classify_response(200, SSE, OPENAI)[0] == OK
    assert classify_response(200, SSE, _chunk("tok1"))[0] == TRUNCATED_SUCCESS


def test_a_malformed_chunk_is_other() -> None:
    stats = _read(_chunk("tok1") + b"data: {not json\n\n" + b"data: [DONE]\n\n")
    assert stats.malformed == 1 and stats.tokens == 1
    assert classify_stream(200, SSE, stats) == (OTHER, "SSE data that is not JSON after 1 tokens")


def test_inter_token_gaps_are_capped_and_counted() -> None:
    stats = StreamStats(0.0)
    reader = EventReader()
    for i in range(ITL_KEPT + 6):
        for event in reader.feed(_chunk("t")):
            stats.add(event, 0.5 + i * 0.002)
    assert stats.ttft_ms == 500.0 and stats.tokens == ITL_KEPT + 6
    assert len(stats.itl_ms) == ITL_KEPT and stats.itl_more == 5 and stats.itl_ms[0] == 2.0


def test_non_streaming_answers_and_error_objects() -> None:
    body = json.dumps({"choices": [{"message": {"content": "hi"}, "finish_reason": "length"}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 16}}).encode()
    assert answer_fields(body) == {"tokens": 16, "finish_reason": "length"}
    anthropic = json.dumps({"type": "message", "stop_reason": "end_turn",
                            "usage": {"input_tokens": 3, "output_tokens": 7}}).encode()
    assert answer_fields(anthropic) == {"tokens": 7, "finish_reason": "end_turn"}
    error = b'{"error": {"type": "rate_limit_exceeded", "message": "slow down"}}'
    json_headers = {"Content-Type": "application/json", "Content-Length": str(len(error))}
    assert classify_response(200, json_headers, error)[0] == INBAND_ERROR
    assert classify_response(200, {"Content-Type": "application/json"}, body)[0] == OK


def test_the_old_count_bounds_keep_counting_what_they_counted() -> None:
    """Before these classes, an error event in a 200 stream was a graceful_error and a clean
    end without [DONE] was truncated; scenarios bound them so (llm-stream-cut,
    long-stream-timeout), so those bounds count the new classes too."""
    from chaos.outcomes import COUNT_BOUNDS, GRACEFUL, HANDLED, STREAM_STALLED, TRUNCATED

    assert COUNT_BOUNDS["graceful_errors"] == (GRACEFUL, INBAND_ERROR)
    assert COUNT_BOUNDS[TRUNCATED] == (TRUNCATED, TRUNCATED_SUCCESS)
    assert COUNT_BOUNDS[INBAND_ERROR] == (INBAND_ERROR,) and INBAND_ERROR in HANDLED
    assert TRUNCATED_SUCCESS not in HANDLED and STREAM_STALLED not in HANDLED


def test_a_stream_cut_inside_an_event() -> None:
    """The reference gateway's answer to an upstream cut mid-event: its error event lands on
    the partial line. And a clean end inside an event (no error told) lacks its terminator."""
    partial = _chunk("tok1") + b'data: {"choices": [{"delta": {"con'
    told = partial + b'event: error\ndata: {"error": {"type": "upstream_disconnected"}}\n\n'
    assert classify_response(200, SSE, told)[0] == INBAND_ERROR
    assert classify_stream(200, SSE, _read(told, step=9))[0] == INBAND_ERROR
    reader = EventReader()
    stats = StreamStats(0.0)
    for event in reader.feed(partial):
        stats.add(event, 0.1)
    for event in reader.close():
        stats.add(event, 0.2, final=True)
    assert (stats.tokens, stats.malformed) == (1, 0)
    assert classify_stream(200, SSE, stats)[0] == TRUNCATED_SUCCESS
    assert classify_response(200, SSE, partial)[0] == TRUNCATED_SUCCESS
    # a terminator without its blank line still ends the stream
    assert classify_response(200, SSE, _chunk("tok1") + b"data: [DONE]")[0] == OK
