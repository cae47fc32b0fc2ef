"""Tokenizers: the real Mistral v1 tokenizer of mistral-common, or a checkpoint's own.

Both turn one user message into the ids of the chat format, so prompt token counts are the
real ones; their ``name`` goes into the workload identity.
"""

from __future__ import annotations

from typing import List

from ..stack.compat import chat_template_ids


class MistralV1Tokenizer:
    """The Mistral v1 tokenizer of mistral-common: ``<s>[INST] user [/INST]``."""

    def __init__(self) -> None:
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        self._mt = MistralTokenizer.v1()
        self._sp = self._mt.instruct_tokenizer.tokenizer
        self.bos_id = int(self._sp.bos_id)
        self.eos_id = int(self._sp.eos_id)
        self.name = "mistral-common v1 (tokenizer.model.v1)"

    def chat_ids(self, user_text: str) -> List[int]:
        from mistral_common.protocol.instruct.messages import UserMessage
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        request = ChatCompletionRequest(messages=[UserMessage(content=user_text)])
        return list(self._mt.encode_chat_completion(request).tokens)

    def decode(self, ids: List[int]) -> str:
        return str(self._sp.decode(list(ids)))


class HFChatTokenizer:
    """A local checkpoint's tokenizer with its own chat template."""

    def __init__(self, path: str) -> None:
        from transformers import AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        self.bos_id = self._tok.bos_token_id
        self.eos_id = int(self._tok.eos_token_id)
        self.name = f"{type(self._tok).__name__} ({path})"

    def chat_ids(self, user_text: str) -> List[int]:
        messages = [{"role": "user", "content": user_text}]
        if getattr(self._tok, "chat_template", None):
            return chat_template_ids(self._tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True))
        # No template shipped: the Mistral v1 format by hand.
        return [int(i) for i in self._tok(f"[INST] {user_text} [/INST]").input_ids]

    def decode(self, ids: List[int]) -> str:
        return str(self._tok.decode(list(ids)))
