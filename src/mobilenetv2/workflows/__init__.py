"""Commands that combine several layers (train + evaluate + export, weights + data + eval, weights + export).

They sit above data/, train/, infer/ and export/, and only cli/ imports them: demo (`run_demo`), evaluate a weights
file (`evaluate_weights`), export a weights file or a registered name (`export_from_file`).
"""
