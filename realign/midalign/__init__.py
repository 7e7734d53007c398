"""Middle-layer alignment of decoder LLMs with LoRA (arXiv 2502.14830), in modules a reader
holds in their head:

- :mod:`.layer_choice` the rule of ``--layer auto`` (from a layer-scan table on disk)
- :mod:`.tasks`        task definitions (label sets, prompt format, parsing, scoring) shared by
                       training and evaluation
- :mod:`.data`         parallel running text and task examples from files
- :mod:`.config`       the run config (one dataclass, saved in every manifest)
- :mod:`.lora`         PEFT LoRA set-up from the architecture table and a freeze spec
- :mod:`.loss`         the alignment loss on layer K (blocks above K never run)
- :mod:`.train`        the joint / alignment-only training loop (Accelerate)
- :mod:`.merge`        merging an alignment adapter into a task adapter (PEFT), with its meaning
- :mod:`.evaluate`     zero-shot task evaluation per language
"""
