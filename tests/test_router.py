import pytest

from mlxtasks import config, protocol, router
from mlxtasks.errors import MlxTasksError

EVERYTHING = {"qwen7b", "qwen32b", "deepseek", "phi4", "mistral7b"}


@pytest.mark.parametrize(
    "prompt, category, alias",
    [
        ("Fix this Python bug in my function", "code", "qwen32b"),
        ("Why does this happen? Explain step by step", "reasoning", "deepseek"),
        ("Solve the equation and calculate the integral", "math", "phi4"),
        ("Write a poem about autumn", "general", "mistral7b"),
    ],
)
def test_rule_table_picks_the_category_and_its_best_model(prompt, category, alias):
    choice = router.route(prompt, EVERYTHING)
    assert (choice.category, choice.alias) == (category, alias)


def test_keywords_match_whole_words_only():
    scores, matched = protocol.score("debugging the classroom", router.DEFAULT_RULES)
    assert matched["code"] == [] and scores["code"] == 0


def test_a_missing_best_model_falls_back_to_the_next_installed_one_and_says_so():
    choice = router.route("refactor this code", {"qwen7b", "deepseek"})
    assert choice.alias == "qwen7b"
    assert "the best model for it, qwen32b, is not installed, so qwen7b, the next installed one" in choice.reason


def test_never_a_model_that_is_not_installed():
    rules = {"code": {"keywords": {"code": 1}, "models": ["qwen32b"]}}
    assert router.route("code", {"my-model"}, rules).alias == "my-model"
    with pytest.raises(MlxTasksError, match="No model is installed"):
        router.route("code", set())


def test_rules_from_config_merge_and_are_checked(tmp_path):
    rules = {**router.DEFAULT_RULES, "code": {"keywords": {"haskell": 5}, "models": ["qwen7b"]}}
    s = config.resolve({"router": rules}, home=tmp_path)
    assert router.route("a haskell question", EVERYTHING, s.router).alias == "qwen7b"
    with pytest.raises(MlxTasksError, match="mlx.router.code.keywords"):
        config.resolve({"router": {"code": {"keywords": ["x"], "models": []}}}, home=tmp_path).router
