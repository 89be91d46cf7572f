import pickle

from promptdeck.errors import PromptFileError


def test_prompt_file_errors_pickle() -> None:
    err = pickle.loads(pickle.dumps(PromptFileError("p.yaml", "bad", line=3, field="user")))
    assert (str(err), err.line, err.field) == ("p.yaml, line 3: field 'user': bad", 3, "user")
