# Runs the rewind command the way a user would and checks exit codes and messages.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# expect(<exit code> <regex the output must match> args...)
function(expect code regex)
  execute_process(COMMAND ${REWIND} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  WORKING_DIRECTORY ${WORK_DIR})
  set(all "${out}${err}")
  if(NOT rc STREQUAL "${code}")
    message(FATAL_ERROR "rewind ${ARGN}: exit ${rc}, expected ${code}\n${all}")
  endif()
  if(NOT all MATCHES "${regex}")
    message(FATAL_ERROR "rewind ${ARGN}: output does not match '${regex}':\n${all}")
  endif()
  if(NOT code STREQUAL "0")
    string(STRIP "${err}" stripped)
    string(FIND "${stripped}" "\n" newline)
    if(NOT newline EQUAL -1)
      message(FATAL_ERROR "rewind ${ARGN}: the error takes more than one line:\n${err}")
    endif()
  endif()
  message(STATUS "ok: rewind ${ARGN}")
endfunction()

expect(0 "Train a recurrent model" --help)
expect(0 "--seq-len" train --help)
expect(2 "rewind: .*task.*nope" train --task nope)
expect(2 "rewind: .*hidden" train --hidden -3)
expect(2 "rewind: .*steps" train --steps 0)
expect(2 "rewind: .*text.*(does not exist|File does not exist)" train --task text --text ${WORK_DIR}/missing.txt)
expect(1 "rewind: --task text needs --text FILE" train --task text)
expect(2 "rewind: .*subcommand" )
expect(2 "rewind: unknown command .frobnicate. \\(commands: train, evaluate, summary, graph, check, diagnose, spectrum\\)" frobnicate)
expect(0 "final loss" train --task adding --steps 5 --batch 4 --seq-len 10 --hidden 8 --no-progress
       --save ${WORK_DIR}/w.safetensors --log ${WORK_DIR}/log.csv)
# Training checkpoints, accumulation and data parallelism: their mistakes.
expect(1 "rewind: --checkpoint-every needs --checkpoint-dir" train --task adding --steps 5 --batch 4
       --seq-len 5 --hidden 4 --checkpoint-every 2 --no-progress)
expect(1 "rewind: --resume auto needs --checkpoint-dir" train --task adding --steps 5 --batch 4
       --seq-len 5 --hidden 4 --resume auto --no-progress)
expect(2 "rewind: .*accumulate" train --accumulate 0)
expect(2 "rewind: .*reduce.*sum" train --reduce sum)
expect(1 "rewind: checkpoint: cannot open '${WORK_DIR}/none.safetensors'" train --task adding
       --steps 5 --batch 4 --seq-len 5 --hidden 4 --resume ${WORK_DIR}/none.safetensors --no-progress)
expect(1 "rewind: checkpoint: cannot resume from .*not a rewind training checkpoint" train
       --task adding --steps 5 --batch 4 --seq-len 10 --hidden 8 --no-progress
       --resume ${WORK_DIR}/w.safetensors)
expect(0 "global batch 12 = 1 rank x 3 micro-batches x 4 rows" train --task copy --steps 3 --batch 4
       --seq-len 6 --hidden 4 --accumulate 3 --no-progress)
# The progress bar (forced; on a terminal it is the default) and plain lines otherwise.
expect(0 "\\[=+\\] 4/4  loss [0-9.]+  [0-9.]+ steps/s  ETA" train --task sine --steps 4 --batch 2 --seq-len 5 --hidden 4
       --log-every 1 --progress)
expect(0 "step 4/4  loss [0-9.]+  [0-9.]+ steps/s" train --task sine --steps 4 --batch 2 --seq-len 5 --hidden 4
       --log-every 1)
# Fashion-MNIST: the options of the other kind of task are refused; evaluate's mistakes; with
# Debian's dataset-fashion-mnist, a short run whose saved weights evaluate to the accuracy the
# run reported, with the confusion matrix files.
expect(0 "--epochs.*--confusion" train --help)
expect(0 "Test accuracy and confusion matrix" evaluate --help)
expect(1 "rewind: --steps is for the generated tasks: fashion-rows trains --epochs over its images"
       train --task fashion-rows --steps 5)
expect(1 "rewind: --seq-len is for the generated tasks" train --task fashion-pixels --seq-len 5)
expect(1 "rewind: --epochs is for the data tasks \\(fashion-rows, fashion-pixels, fashion-permuted\\), not 'adding'"
       train --task adding --epochs 2)
expect(2 "rewind: .*weights.*required" evaluate)
expect(1 "rewind: evaluate: '${WORK_DIR}/w.safetensors' was trained on 'adding', not a data task"
       evaluate --weights ${WORK_DIR}/w.safetensors)
expect(1 "rewind: Fashion-MNIST: '${WORK_DIR}' has no train-images-idx3-ubyte \\(nor train-images-idx3-ubyte.gz\\): Debian's dataset-fashion-mnist"
       train --task fashion-rows --data ${WORK_DIR})
if(EXISTS /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz)
  execute_process(COMMAND ${REWIND} train --task fashion-rows --cell gru --hidden 8 --subset 200
                          --validation 100 --epochs 2 --batch 20 --no-progress
                          --save ${WORK_DIR}/fashion.safetensors --log ${WORK_DIR}/fashion.csv
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "test accuracy ([0-9.]+) \\(10000 images; the weights of epoch")
    message(FATAL_ERROR "fashion-rows training: exit ${rc}\n${out}${err}")
  endif()
  set(trained "${CMAKE_MATCH_1}")
  foreach(want "epoch 1/2 step 10/10  loss" "epoch 2/2: loss [0-9.]+  acc [0-9.]+  validation acc"
          "samples/s" "Ankle boot  9" "peak memory [0-9]+ MB" "saved the best epoch's weights")
    if(NOT out MATCHES "${want}")
      message(FATAL_ERROR "fashion-rows training: no '${want}' in\n${out}")
    endif()
  endforeach()
  file(STRINGS ${WORK_DIR}/fashion.csv log)
  list(GET log 0 header)
  list(LENGTH log lines)
  if(NOT header STREQUAL "epoch,step,loss,accuracy,val_accuracy,train_seconds,eval_seconds,seconds"
     OR NOT lines EQUAL 3)
    message(FATAL_ERROR "fashion.csv: ${log}")
  endif()
  expect(0 "fashion.safetensors \\(gru, 1 layer, hidden 8\\) on fashion-rows: test accuracy ${trained} of 10000 images.*wrote ${WORK_DIR}/conf.csv and ${WORK_DIR}/conf.svg"
         evaluate --weights ${WORK_DIR}/fashion.safetensors --confusion ${WORK_DIR}/conf)
  expect(0 "\\[=+\\] 5/5  loss [0-9.]+  acc [0-9.]+  [0-9]+ samples/s  ETA" train --task fashion-rows
         --hidden 4 --subset 100 --validation 0 --epochs 1 --batch 20 --log-every 1 --progress)
  expect(0 "test accuracy [0-9.]+ \\(10000 images; the weights of epoch 1\\)" train --task fashion-rows
         --hidden 4 --subset 100 --validation 0 --epochs 1 --batch 20 --no-progress)
else()
  message(STATUS "skipped the Fashion-MNIST runs: Debian's dataset-fashion-mnist is not installed")
endif()
# Two model choices at once are refused, in every command that builds a model.
foreach(sub train summary graph check diagnose spectrum)
  expect(2 "rewind: --cell excludes --cell-file" ${sub} --cell gru --cell-file
         ${TOOLS_DIR}/../examples/cells/mgu.cell)
endforeach()
# Each model command's --help shows the defaults it runs with: its own, not another command's.
function(help_default sub option out)
  execute_process(COMMAND ${REWIND} ${sub} --help OUTPUT_VARIABLE help)
  if(NOT help MATCHES "${option} [^\n]*=([0-9]+)\n")
    message(FATAL_ERROR "rewind ${sub} --help shows no default for ${option}:\n${help}")
  endif()
  set(${out} ${CMAKE_MATCH_1} PARENT_SCOPE)
endfunction()
foreach(sub check "spectrum;--jacobian;-o;${WORK_DIR}/defaults")
  list(GET sub 0 name)
  help_default(${name} --steps steps)
  help_default(${name} --hidden hidden)
  help_default(${name} --batch batch)
  expect(0 "hidden ${hidden}, ${steps} steps, batch ${batch}" ${sub})
endforeach()
help_default(diagnose --steps steps)
expect(0 "gradient flow through ${steps} steps" diagnose -o ${WORK_DIR}/defaults)
file(STRINGS ${WORK_DIR}/defaults.csv rows)
list(LENGTH rows count)
math(EXPR count "${count} - 1")  # the header
if(NOT count EQUAL steps)
  message(FATAL_ERROR "rewind diagnose: ${count} steps in its CSV, --help says ${steps}")
endif()
help_default(graph --steps steps)
execute_process(COMMAND ${REWIND} graph OUTPUT_VARIABLE dot RESULT_VARIABLE rc)
string(REGEX MATCHALL "label=\"t[0-9]+\"" step_clusters "${dot}")
list(LENGTH step_clusters count)
if(NOT rc EQUAL 0 OR NOT count EQUAL steps)
  message(FATAL_ERROR "rewind graph: ${count} time steps drawn, --help says ${steps}")
endif()
file(READ ${WORK_DIR}/log.csv csv)
if(NOT csv MATCHES "^step,loss,accuracy,seconds\n1,")
  message(FATAL_ERROR "unexpected log:\n${csv}")
endif()

expect(0 "lstm \\(2xLstm bidir\\) +\\(None, 128\\).*Total params: " summary --task adding --cell lstm --hidden 64 --layers 2 --bidirectional)

# graph, check, diagnose
expect(0 "wrote .*g.svg: [0-9]+ nodes" graph --cell lstm --steps 3 -o ${WORK_DIR}/g.svg)
expect(0 "steps folded" graph --cell gru --steps 50 --rolled --grad -o ${WORK_DIR}/g.png)
expect(0 "wrote .*g.dot" graph --cell mgu --steps 3 --layers 2 --bidirectional -o ${WORK_DIR}/g.dot)
expect(0 "digraph rewind" graph --cell rnn --steps 2)
expect(1 "rewind: render: unsupported format 'gif'" graph -o ${WORK_DIR}/g.gif)
# The interactive page: written, byte-identical from one process to the next, a compare page,
# and the mistakes.
expect(0 "wrote .*p1.html: [0-9]+ ops, 6 sequences, [0-9]+ step layouts" graph --cell lstm --steps 6 --layers 2 --bidirectional --html ${WORK_DIR}/p1.html)
expect(0 "wrote .*p2.html" graph --cell lstm --steps 6 --layers 2 --bidirectional --html ${WORK_DIR}/p2.html)
file(READ ${WORK_DIR}/p1.html page1 HEX)
file(READ ${WORK_DIR}/p2.html page2 HEX)
if(NOT page1 STREQUAL page2)
  message(FATAL_ERROR "rewind graph --html: two runs wrote different pages")
endif()
expect(0 "wrote .*c.html: .*ops differ" graph --cell gru --steps 5 --html ${WORK_DIR}/c.html --compare seed=2)
expect(0 "wrote .*f.html" graph --cell-file ${TOOLS_DIR}/../examples/cells/ugrnn.cell --steps 4 --html ${WORK_DIR}/f.html)
expect(1 "rewind: --compare: unknown key 'colour' \\(seed, cell, cell-file or forget-bias\\)" graph --html ${WORK_DIR}/x.html --compare colour=red)
expect(1 "rewind: --compare: seed must be a number, got 'two'" graph --html ${WORK_DIR}/x.html --compare seed=two)
expect(2 "rewind: --compare requires --html" graph --compare seed=2)
expect(0 "gradcheck PASSED" check --cell peephole --steps 3)
expect(0 "gradcheck PASSED: .* random directions" check --cell lstm --layers 2 --bidirectional --fast)
expect(0 "gradgradcheck PASSED: 10 tensor\\(s\\), 184 direction\\(s\\) \\(every element\\).*transpose identity.*ok" check --cell lstm --steps 4 --order 2)
expect(0 "gradgradcheck PASSED: .* direction\\(s\\) \\(random\\)" check --cell mgu --layers 2 --bidirectional --order 2 --fast)
expect(2 "rewind: --order: .*3" check --order 3)
expect(0 "per step away from the loss" diagnose --cell rnn --steps 30 -o ${WORK_DIR}/d)
expect(1 "rewind: --forget-bias applies to the lstm cell only" diagnose --cell gru --forget-bias 1)
# Cells written as files: every example passes check (first and second order), and graph,
# diagnose, summary, train and spectrum take them; a mistake is located (file:line:column).
file(GLOB cell_files ${TOOLS_DIR}/../examples/cells/*.cell)
foreach(cell ${cell_files})
  expect(0 "gradcheck PASSED" check --cell-file ${cell} --steps 3)
  expect(0 "gradgradcheck PASSED" check --cell-file ${cell} --steps 3 --order 2 --fast)
endforeach()
# Today's variants in the commands that look at a model: the interactive page, the gradient flow
# and the Lyapunov spectrum (their states are matrices, a convolution's taps, a complex pair).
foreach(variant mingru minlstm lru slstm s6 gla deltanet mlstm gated_deltanet)
  set(cell ${TOOLS_DIR}/../examples/cells/${variant}.cell)
  expect(0 "wrote .*${variant}.html" graph --cell-file ${cell} --hidden 8 --steps 2 --html ${WORK_DIR}/${variant}.html)
  expect(0 "per step away from the loss" diagnose --cell-file ${cell} --hidden 8 --steps 10 -o ${WORK_DIR}/d-${variant})
  expect(0 "Lyapunov spectrum of a [0-9]+-dimensional state, 2 exponents" spectrum --cell-file ${cell} --hidden 8 --lyapunov 2 --lyapunov-steps 40 --warmup 5 -o ${WORK_DIR}/ly-${variant})
endforeach()
# An unstabilised exponential gate overflows (float: exp(30 + 1e13) at the second step): the
# divergence says how to find it, and --anomaly names the op and where it was recorded.
file(WRITE ${WORK_DIR}/blowup.cell "cell blowup\nstate h = hidden\nparam w [hidden, input] constant(30)\nnext h = exp(x @ w' + h)\n")
expect(1 "training diverged: loss is .* at step 1 \\(--anomaly stops at the first op" train --task adding --cell-file ${WORK_DIR}/blowup.cell --hidden 4 --steps 3 --batch 4 --seq-len 5 --no-progress)
expect(1 "anomaly: exp at layer0/fwd/t1: Inf in its value" train --task adding --cell-file ${WORK_DIR}/blowup.cell --hidden 4 --steps 3 --batch 4 --seq-len 5 --no-progress --anomaly)
# A matrix memory's state is wider than hidden (hidden * hidden / 4 at hidden 8: 16 columns).
expect(0 "gradcheck PASSED" check --cell-file ${TOOLS_DIR}/../examples/cells/gated_deltanet.cell
       --hidden 8 --steps 2)
expect(0 "wrote .*cifg.svg: [0-9]+ nodes" graph --cell-file ${TOOLS_DIR}/../examples/cells/cifg_lstm.cell --steps 3 -o ${WORK_DIR}/cifg.svg)
expect(0 "per step away from the loss" diagnose --cell-file ${TOOLS_DIR}/../examples/cells/indrnn.cell --steps 20 -o ${WORK_DIR}/ind)
expect(0 "gru \\(1xSequence\\) +\\(None, 32\\) +3,456" summary --task adding --cell-file ${TOOLS_DIR}/../examples/cells/gru.cell --hidden 32)
expect(0 "final loss" train --task adding --cell-file ${TOOLS_DIR}/../examples/cells/ugrnn.cell --steps 5 --batch 4 --seq-len 10 --hidden 8 --no-progress)
expect(0 "Lyapunov spectrum of a 8-dimensional state" spectrum --cell-file ${TOOLS_DIR}/../examples/cells/mgu.cell --hidden 8 --lyapunov 2 --lyapunov-steps 100 --warmup 10 -o ${WORK_DIR}/ms)
file(WRITE ${WORK_DIR}/bad.cell "cell bad\nstate h = hidden\nparam w [hidden, input] uniform(0.1)\nnext h = tanh(x @ w' + h @ v')\n")
execute_process(COMMAND ${REWIND} check --cell-file ${WORK_DIR}/bad.cell RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "bad.cell:4:28: unknown name 'v'.*\n  next h = tanh\\(x @ w' \\+ h @ v'\\)\n                             \\^")
  message(FATAL_ERROR "a bad cell file: exit ${rc}, expected 1 and a located error:\n${err}")
endif()

# spectrum: of the weights trained above, on their task; of a custom cell; errors.
expect(0 "lstm on adding: 1 layer, hidden 8, 10 steps, batch 4, 393 parameters.*Hessian, Lanczos: 3 eigenpairs.*layer0/fwd +∂h_T/∂h_t at the far end.*Lyapunov spectrum of a 16-dimensional state, 4 exponents over 300 steps.*wrote .*s.json"
       spectrum --task adding --cell lstm --hidden 8 --steps 10 --batch 4 --weights ${WORK_DIR}/w.safetensors
       --hessian top-k --top 3 --jacobian --lyapunov 4 --lyapunov-steps 300 --warmup 50 -o ${WORK_DIR}/s)
expect(0 "Hessian spectral density \\(SLQ, 40 Lanczos iterations\\): eigenvalues in \\[.*hessian-vector products: 40/40"
       spectrum --cell peephole --steps 5 --hessian density --iterations 40 -o ${WORK_DIR}/p)
file(READ ${WORK_DIR}/p-density.svg density_svg)
if(NOT density_svg MATCHES "Hessian spectral density \\(SLQ, 40 Lanczos iterations\\)")
  message(FATAL_ERROR "the density plot's title does not say what 40 counts:\n${density_svg}")
endif()
expect(0 "Hessian trace \\(Hutchinson, 20 samples\\): .* ± " spectrum --cell gru --layers 2 --bidirectional --steps 4 --hessian trace --samples 20 -o ${WORK_DIR}/t)
expect(1 "rewind: spectrum: nothing to do: ask for --hessian, --jacobian or --lyapunov" spectrum)
expect(2 "rewind: --hessian: .*eigen" spectrum --hessian eigen)
# Weights under other flags than they were trained with: the flags that fit them.
expect(1 "rewind: spectrum: .*w.safetensors was saved by `rewind train` with other flags \\(hidden is 5 here, 8 there\\): run with --task adding --cell lstm --hidden 8 --layers 1 --weights "
       spectrum --task adding --cell lstm --hidden 5 --weights ${WORK_DIR}/w.safetensors --jacobian)
expect(1 "rewind: diagnose: .*other flags \\(task is none here, adding there; cell is gru here, lstm there; hidden is 32 here, 8 there\\): run with --task adding --cell lstm --hidden 8 --layers 1 --weights "
       diagnose --cell gru --weights ${WORK_DIR}/w.safetensors)
expect(0 "final loss" train --task adding --cell-file ${TOOLS_DIR}/../examples/cells/ugrnn.cell --steps 2 --batch 4 --seq-len 5 --hidden 4 --no-progress --save ${WORK_DIR}/ugrnn.safetensors)
expect(1 "rewind: diagnose: .*\\(cell is lstm here, ugrnn there\\): run with --task adding --cell-file ugrnn.cell --hidden 4"
       diagnose --task adding --hidden 4 --weights ${WORK_DIR}/ugrnn.safetensors)
# diagnose of trained weights on their task: loaded (the report differs from the untrained one's).
foreach(run trained untrained)
  set(weights --weights ${WORK_DIR}/w.safetensors)
  if(run STREQUAL "untrained")
    set(weights "")
  endif()
  expect(0 "lstm on adding: gradient flow through 10 steps \\(loss of the task\\)"
         diagnose --task adding --cell lstm --hidden 8 --steps 10 --batch 4 ${weights} -o ${WORK_DIR}/d-${run})
  file(READ ${WORK_DIR}/d-${run}.csv csv_${run})
endforeach()
if(csv_trained STREQUAL csv_untrained)
  message(FATAL_ERROR "diagnose --weights: the same report as without the weights")
endif()
execute_process(
  COMMAND ${PYTHON} -c "
import json
s = json.load(open('${WORK_DIR}/s.json'))
top = s['hessian_top']['values']
assert len(top) == 3 and top[0] >= top[1] >= top[2], top
j = s['jacobian']['series'][0]
assert len(j['singular_values']) == 10 and len(j['singular_values'][0]) == 8, j.keys()
assert abs(j['frobenius'][-1] - 8 ** 0.5) < 1e-8, j['frobenius'][-1]
assert len(s['lyapunov']['exponents']) == 4
print('spectrum json ok')
"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "spectrum JSON: ${out}${err}")
endif()
foreach(f g.svg g.png g.dot d.csv d.json d.svg s-hessian.csv s-jacobian.csv s-jacobian.svg
          s-lyapunov.csv s-lyapunov.svg p-density.csv p-density.svg t.json)
  if(NOT EXISTS ${WORK_DIR}/${f})
    message(FATAL_ERROR "missing ${f}")
  endif()
endforeach()

# Python reads the weights with json and numpy alone.
execute_process(
  COMMAND ${PYTHON} -c "
import sys; sys.path.insert(0, '${TOOLS_DIR}')
from safetensors_io import read_safetensors
t, meta = read_safetensors('${WORK_DIR}/w.safetensors')
assert meta['cell'] == 'lstm' and meta['task'] == 'adding', meta
assert t['weight_hh_l0'].shape == (32, 8) and t['head.weight'].shape == (1, 8), {k: v.shape for k, v in t.items()}
assert str(t['weight_ih_l0'].dtype) == 'float32'
print('python read', len(t), 'tensors')
"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "python could not read the weights: ${out}${err}")
endif()
message(STATUS "${out}")

# Checkpointed BPTT: 200 training steps with a memory budget and with each schedule give the
# plain run's loss log and weights, byte for byte (adding task, one layer). The budget is just
# above one step's recording as Tape::capacity_bytes counts it (133.8 KiB, every sweep's buffers
# included), which leaves room for 4 to 8 checkpoints of 256 B.
expect(0 "final loss" train --task adding --steps 200 --batch 4 --seq-len 20 --hidden 8 --log-every 1 --log ${WORK_DIR}/plain.csv --save ${WORK_DIR}/plain.safetensors --no-progress)
foreach(mode "--checkpoints;3" "--checkpoints;3;--schedule;online" "--checkpoints;4;--schedule;uniform" "--memory-budget;135K")
  string(MAKE_C_IDENTIFIER "${mode}" tag)
  expect(0 "checkpointing: (revolve|online|uniform): 20 steps" train --task adding --steps 200 --batch 4 --seq-len 20 --hidden 8 --log-every 1 --log ${WORK_DIR}/${tag}.csv --save ${WORK_DIR}/${tag}.safetensors --no-progress ${mode})
  file(READ ${WORK_DIR}/plain.safetensors a HEX)
  file(READ ${WORK_DIR}/${tag}.safetensors b HEX)
  if(NOT a STREQUAL b)
    message(FATAL_ERROR "train ${mode}: the weights differ from plain BPTT's")
  endif()
  execute_process(  # every step's loss, without the seconds column
    COMMAND ${PYTHON} -c "
import csv, sys
rows = lambda f: [r[:3] for r in csv.reader(open(f))]
a, b = rows('${WORK_DIR}/plain.csv'), rows('${WORK_DIR}/${tag}.csv')
sys.exit(0 if a == b and len(a) == 201 else 1)"
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "train ${mode}: the loss log differs from plain BPTT's")
  endif()
endforeach()
expect(1 "a memory budget of 1.0 KiB is too small: the minimum is" train --memory-budget 1K --steps 1 --no-progress)
expect(1 "need a unidirectional model" train --bidirectional --checkpoints 3 --steps 1 --no-progress)
