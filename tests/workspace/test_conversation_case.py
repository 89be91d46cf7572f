"""A Playground conversation saved as a dataset case, and read back as the same conversation."""

import json
from pathlib import Path

import pytest

from promptdeck.errors import DatasetError
from promptdeck.model.types import Message, ToolCall
from promptdeck.workspace.dataset_edit import conversation_case
from promptdeck.workspace.datasets import append_case, load_dataset
from promptdeck.workspace.prompts import render_messages
from tests.helpers import variant

CALL = ToolCall("c1", "get_order", '{"order_id": "A17"}')
CONVERSATION = (
    Message("system", "You are support."),
    Message("user", "Customer message: where is A17?"),
    Message("assistant", "", tool_calls=(CALL,), thinking="look it up"),
    Message("tool", '{"status": "shipped"}', tool_call_id="c1", name="get_order"),
    Message("assistant", "It shipped.", thinking="done"),
    Message("user", "When does it arrive?"),
    Message("assistant", "Tomorrow."),
)


def test_the_history_is_the_text_turns_before_the_last_user_message() -> None:
    values = conversation_case(CONVERSATION, {"input": "where is A17?", "order": 17})
    assert values["input"] == "When does it arrive?"
    assert values["order"] == "17"
    assert json.loads(values["messages"]) == [
        {"role": "user", "content": "Customer message: where is A17?"},
        {"role": "assistant", "content": "It shipped."},
    ]


def test_a_first_turn_has_an_empty_history() -> None:
    values = conversation_case(CONVERSATION[:2], {})
    assert values == {"input": "Customer message: where is A17?", "messages": "[]"}


def test_a_conversation_without_a_user_message_is_refused() -> None:
    with pytest.raises(DatasetError, match="no user message"):
        conversation_case((Message("system", "s"),), {"input": "x"})


def test_the_saved_case_replays_the_conversation(tmp_path: Path) -> None:
    path = tmp_path / "conversations.csv"
    case_id = append_case(path, conversation_case(CONVERSATION, {"input": "where is A17?"}))
    [case] = load_dataset(path).cases
    assert case.id == case_id
    messages = render_messages(variant("t/v", "fake/m", system="Be brief."), case.values)
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be brief."),
        ("user", "Customer message: where is A17?"),
        ("assistant", "It shipped."),
        ("user", "When does it arrive?"),
    ]
