module sbus.example/go_example

go 1.19
