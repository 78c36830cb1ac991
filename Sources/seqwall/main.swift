print("seqwall")
